//! KYC submissions and their documents.

use sqlx::FromRow;
use uuid::Uuid;

use super::users::User;
use super::{DbHandle, StoreError, map_duplicate, timestamp};
use crate::domain::kyc::{KycKind, KycStatus};

#[derive(Debug, Clone, FromRow)]
pub struct Submission {
    pub id: String,
    pub user_id: String,
    pub kind: KycKind,
    pub id_number_last4: String,
    pub document_id: Option<String>,
    pub status: KycStatus,
    pub rejection_reason: Option<String>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<String>,
    pub resubmission_of: Option<String>,
    pub created_at: String,
}

/// A sealed document to store beside a submission.
pub struct NewDocument<'a> {
    pub content_type: &'a str,
    pub size_bytes: i64,
    pub sealed: &'a str,
}

pub struct NewSubmission<'a> {
    pub user_id: &'a str,
    pub kind: KycKind,
    pub id_number_sealed: &'a str,
    pub id_number_last4: &'a str,
    pub document: Option<NewDocument<'a>>,
    pub resubmission_of: Option<&'a str>,
}

/// Stores a pending submission (and its document). A second pending
/// submission for the same user is `Duplicate`, enforced by the database.
pub async fn insert(db: &mut impl DbHandle, new: NewSubmission<'_>) -> Result<Submission, StoreError> {
    let now = timestamp::now();
    let document_id = match &new.document {
        Some(document) => {
            let id = Uuid::now_v7().to_string();
            let (conn, obs) = db.parts();
            obs.run(
                "kyc_documents.insert",
                sqlx::query(
                    "insert into kyc_documents (id, content_type, size_bytes, sealed, created_at) values ($1, $2, $3, $4, $5)",
                )
                .bind(&id)
                .bind(document.content_type)
                .bind(document.size_bytes)
                .bind(document.sealed)
                .bind(&now)
                .execute(conn),
            )
            .await?;
            Some(id)
        }
        None => None,
    };
    let id = Uuid::now_v7().to_string();
    let (conn, obs) = db.parts();
    obs.run(
        "kyc_submissions.insert",
        sqlx::query(
            "insert into kyc_submissions (id, user_id, kind, id_number_sealed, id_number_last4, document_id, status, \
             resubmission_of, created_at) values ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)",
        )
        .bind(&id)
        .bind(new.user_id)
        .bind(new.kind.as_str())
        .bind(new.id_number_sealed)
        .bind(new.id_number_last4)
        .bind(document_id)
        .bind(new.resubmission_of)
        .bind(&now)
        .execute(conn),
    )
    .await
    .map_err(map_duplicate("a pending KYC submission for this user"))?;
    find(db, &id)
        .await?
        .ok_or_else(|| StoreError::Missing(format!("KYC submission {id} was written but cannot be read back")))
}

pub async fn find(db: &mut impl DbHandle, id: &str) -> Result<Option<Submission>, StoreError> {
    let (conn, obs) = db.parts();
    let row: Option<Submission> = obs
        .run(
            "kyc_submissions.find",
            sqlx::query_as(
                "select id, user_id, kind, id_number_last4, document_id, status, rejection_reason, reviewed_by, \
                 reviewed_at, resubmission_of, created_at from kyc_submissions where id = $1",
            )
            .bind(id)
            .fetch_optional(conn),
        )
        .await?;
    Ok(row)
}

pub async fn list_for_user(db: &mut impl DbHandle, user_id: &str) -> Result<Vec<Submission>, StoreError> {
    let (conn, obs) = db.parts();
    let rows: Vec<Submission> = obs
        .run(
            "kyc_submissions.list_for_user",
            sqlx::query_as(
                "select id, user_id, kind, id_number_last4, document_id, status, rejection_reason, reviewed_by, \
                 reviewed_at, resubmission_of, created_at from kyc_submissions where user_id = $1 \
                 order by created_at desc, id desc",
            )
            .bind(user_id)
            .fetch_all(conn),
        )
        .await?;
    Ok(rows)
}

/// A page of submissions in one status, oldest first (a review queue), and
/// how many there are in all; with `after` (a submission's id, whatever its
/// status now) only those after it in that order, not counted (None).
pub async fn list_by_status(
    db: &mut impl DbHandle,
    status: KycStatus,
    limit: i64,
    offset: i64,
    after: Option<&str>,
) -> Result<(Vec<Submission>, Option<i64>), StoreError> {
    let (conn, obs) = db.parts();
    let rows: Vec<Submission> = obs
        .run(
            "kyc_submissions.list_by_status",
            sqlx::query_as(
                "select id, user_id, kind, id_number_last4, document_id, status, rejection_reason, reviewed_by, \
                 reviewed_at, resubmission_of, created_at from kyc_submissions where status = $1 \
                 and ($4 is null or (created_at, id) > (select created_at, id from kyc_submissions where id = $4)) \
                 order by created_at, id limit $2 offset $3",
            )
            .bind(status.as_str())
            .bind(limit)
            .bind(offset)
            .bind(after)
            .fetch_all(conn),
        )
        .await?;
    if after.is_some() {
        return Ok((rows, None));
    }
    let (conn, obs) = db.parts();
    let (total,): (i64,) = obs
        .run(
            "kyc_submissions.count_by_status",
            sqlx::query_as("select count(*) from kyc_submissions where status = $1")
                .bind(status.as_str())
                .fetch_one(conn),
        )
        .await?;
    Ok((rows, Some(total)))
}

/// Records a decision, only if the submission is still pending (so two
/// admins deciding at once cannot both win). Returns whether it applied.
pub async fn record_decision(
    db: &mut impl DbHandle,
    id: &str,
    status: KycStatus,
    reason: Option<&str>,
    reviewer: &str,
) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let result = obs
        .run(
            "kyc_submissions.decide",
            sqlx::query(
                "update kyc_submissions set status = $2, rejection_reason = $3, reviewed_by = $4, reviewed_at = $5 \
                 where id = $1 and status = 'pending'",
            )
            .bind(id)
            .bind(status.as_str())
            .bind(reason)
            .bind(reviewer)
            .bind(timestamp::now())
            .execute(conn),
        )
        .await?;
    Ok(result.rows_affected() == 1)
}

/// The sealed bytes and type of a document.
pub async fn document(db: &mut impl DbHandle, id: &str) -> Result<Option<(String, String)>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "kyc_documents.find",
        sqlx::query_as("select content_type, sealed from kyc_documents where id = $1")
            .bind(id)
            .fetch_optional(conn),
    )
    .await
}

/// A stored document's content type, without reading the document.
pub async fn document_type(db: &mut impl DbHandle, id: &str) -> Result<Option<String>, StoreError> {
    let (conn, obs) = db.parts();
    let row: Option<(String,)> = obs
        .run(
            "kyc_documents.content_type",
            sqlx::query_as("select content_type from kyc_documents where id = $1")
                .bind(id)
                .fetch_optional(conn),
        )
        .await?;
    Ok(row.map(|(t,)| t))
}

/// Whether the user has an approved KYC (required to fund escrow and to
/// withdraw).
pub async fn is_verified(db: &mut impl DbHandle, user_id: &str) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let (count,): (i64,) = obs
        .run(
            "kyc_submissions.is_verified",
            sqlx::query_as("select count(*) from kyc_submissions where user_id = $1 and status = 'approved'")
                .bind(user_id)
                .fetch_one(conn),
        )
        .await?;
    Ok(count > 0)
}

/// [`is_verified`] for a user as loaded: no statement when the load saw an
/// approval (final), one otherwise (it may have been approved since).
pub async fn is_verified_user(db: &mut impl DbHandle, user: &User) -> Result<bool, StoreError> {
    if user.kyc_verified == Some(true) {
        return Ok(true);
    }
    is_verified(db, &user.id).await
}

pub async fn count_pending(db: &mut impl DbHandle) -> Result<i64, StoreError> {
    let (conn, obs) = db.parts();
    let (count,): (i64,) = obs
        .run(
            "kyc_submissions.count_pending",
            sqlx::query_as("select count(*) from kyc_submissions where status = 'pending'").fetch_one(conn),
        )
        .await?;
    Ok(count)
}
