//! Evidence files attached to a milestone's dispute (sealed bytes).

use sqlx::FromRow;
use uuid::Uuid;

use super::{DbHandle, StoreError, timestamp};

/// A file's description (never its bytes).
#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct DisputeFile {
    pub id: String,
    pub milestone_id: String,
    pub uploaded_by: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub created_at: String,
}

const COLUMNS: &str = "id, milestone_id, uploaded_by, content_type, size_bytes, created_at";

pub struct NewFile<'a> {
    pub milestone_id: &'a str,
    pub uploaded_by: &'a str,
    pub content_type: &'a str,
    pub size_bytes: i64,
    pub sealed: &'a str,
}

pub async fn insert(db: &mut impl DbHandle, file: &NewFile<'_>) -> Result<DisputeFile, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "dispute_files.insert",
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "insert into dispute_files (id, milestone_id, uploaded_by, content_type, size_bytes, sealed, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7) returning {COLUMNS}"
        )))
        .bind(Uuid::now_v7().to_string())
        .bind(file.milestone_id)
        .bind(file.uploaded_by)
        .bind(file.content_type)
        .bind(file.size_bytes)
        .bind(file.sealed)
        .bind(timestamp::now())
        .fetch_one(conn),
    )
    .await
}

/// A milestone's files, oldest first.
pub async fn list(db: &mut impl DbHandle, milestone_id: &str) -> Result<Vec<DisputeFile>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "dispute_files.list",
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {COLUMNS} from dispute_files where milestone_id = $1 order by created_at, id"
        )))
        .bind(milestone_id)
        .fetch_all(conn),
    )
    .await
}

/// One file's content type and sealed bytes, if it belongs to the milestone.
pub async fn sealed(
    db: &mut impl DbHandle,
    milestone_id: &str,
    id: &str,
) -> Result<Option<(String, String)>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "dispute_files.find",
        sqlx::query_as("select content_type, sealed from dispute_files where id = $1 and milestone_id = $2")
            .bind(id)
            .bind(milestone_id)
            .fetch_optional(conn),
    )
    .await
}
