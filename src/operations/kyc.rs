//! Identity verification: a user submits (or resubmits after a rejection)
//! an ID number and optionally a document, sealed at rest; an admin decides.
//! An admin never decides their own submission (four eyes).

use serde_json::json;

use super::{OperationError, conflict};
use crate::auth::seal::Sealer;
use crate::domain::event::EventType;
use crate::domain::kyc::{Decision, DocumentType, IdNumber, KycKind, KycStatus};
use crate::store::audit::{self, AuditEvent};
use crate::store::kyc::{self, NewDocument, NewSubmission, Submission};
use crate::store::users::User;
use crate::store::{Database, Tx};
use crate::telemetry::metrics::{Metrics, StatusLabels};

/// A submission as the user gave it, already parsed (the document's type
/// recognised by its content).
pub struct KycForm {
    pub kind: KycKind,
    pub id_number: IdNumber,
    pub document: Option<(DocumentType, Vec<u8>)>,
}

/// What KYC operations need.
pub struct Kyc<'a> {
    pub db: &'a Database,
    pub sealer: &'a Sealer,
    pub metrics: &'a Metrics,
}

fn sealing_failed(err: impl std::fmt::Display) -> OperationError {
    OperationError::Internal(format!("sealing a KYC submission failed: {err}"))
}

fn audit_kyc(tx: &mut Tx, actor_id: &str, action: &str, submission_id: &str, details: serde_json::Value) {
    tx.audit(AuditEvent {
        actor_id: Some(actor_id),
        action,
        target_type: "kyc_submission",
        target_id: Some(submission_id),
        request_id: crate::telemetry::request_id::current_string().as_deref(),
        details,
    });
}

impl Kyc<'_> {
    /// A first submission (or a resubmission of the rejected
    /// `resubmission_of`). Sealing happens before the transaction opens.
    #[tracing::instrument(name = "kyc.submit", skip_all, fields(user_id = %user.id))]
    pub async fn submit(
        &self,
        user: &User,
        form: KycForm,
        resubmission_of: Option<&str>,
    ) -> Result<Submission, OperationError> {
        let sealed_id = self
            .sealer
            .seal(form.id_number.expose().as_bytes())
            .map_err(sealing_failed)?;
        let sealed_document = match &form.document {
            Some((kind, bytes)) => Some((*kind, bytes.len(), self.sealer.seal(bytes).map_err(sealing_failed)?)),
            None => None,
        };
        let mut tx = self.db.begin().await?;
        if kyc::is_verified_user(&mut tx, user).await? {
            return Err(conflict("your identity is already verified"));
        }
        let submission = kyc::insert(
            &mut tx,
            NewSubmission {
                user_id: &user.id,
                kind: form.kind,
                id_number_sealed: &sealed_id,
                id_number_last4: form.id_number.last_four(),
                document: sealed_document.as_ref().map(|(kind, size, sealed)| NewDocument {
                    content_type: kind.content_type(),
                    size_bytes: *size as i64,
                    sealed,
                }),
                resubmission_of,
            },
        )
        .await?;
        let action = if resubmission_of.is_some() {
            "kyc.resubmitted"
        } else {
            "kyc.submitted"
        };
        audit_kyc(
            &mut tx,
            &user.id,
            action,
            &submission.id,
            json!({ "type": form.kind.as_str(), "has_document": form.document.is_some() }),
        );
        tx.commit().await?;
        self.metrics
            .kyc_submissions
            .get_or_create(&StatusLabels { status: "pending" })
            .inc();
        Ok(submission)
    }

    /// Resubmits after a rejection: `previous_id` must be the user's own
    /// rejected submission.
    pub async fn resubmit(&self, user: &User, previous_id: &str, form: KycForm) -> Result<Submission, OperationError> {
        let previous = {
            let mut conn = self.db.acquire().await?;
            kyc::find(&mut conn, previous_id).await?
        };
        // Someone else's submission is "not found", so ids cannot be probed.
        let previous = previous
            .filter(|s| s.user_id == user.id)
            .ok_or(OperationError::NotFound("KYC submission"))?;
        previous.status.check_resubmittable()?;
        self.submit(user, form, Some(&previous.id)).await
    }

    /// An admin approves or rejects a pending submission (final for it).
    #[tracing::instrument(name = "kyc.decide", skip_all, fields(submission_id = %id, user_id = %admin.id))]
    pub async fn decide(&self, admin: &User, id: &str, decision: Decision) -> Result<Submission, OperationError> {
        let mut tx = self.db.begin().await?;
        let submission = kyc::find(&mut tx, id)
            .await?
            .ok_or(OperationError::NotFound("KYC submission"))?;
        if submission.user_id == admin.id {
            return Err(OperationError::Forbidden(
                "an admin cannot decide their own KYC submission; another admin must".into(),
            ));
        }
        let status = submission.status.decide(&decision)?;
        let reason = match &decision {
            Decision::Reject { reason } => Some(reason.as_str()),
            Decision::Approve => None,
        };
        if !kyc::record_decision(&mut tx, id, status, reason, &admin.id).await? {
            return Err(conflict("this submission was decided by someone else just now"));
        }
        let action = if status == KycStatus::Approved {
            "kyc.approved"
        } else {
            "kyc.rejected"
        };
        audit_kyc(&mut tx, &admin.id, action, id, json!({ "user_id": submission.user_id }));
        let decided = kyc::find(&mut tx, id)
            .await?
            .ok_or_else(|| OperationError::Internal(format!("KYC submission {id} vanished while decided")))?;
        let event = if status == KycStatus::Approved {
            EventType::KycApproved
        } else {
            EventType::KycRejected
        };
        tx.emit(super::events::kyc_decision(event, &decided));
        tx.commit().await?;
        self.metrics
            .kyc_submissions
            .get_or_create(&StatusLabels {
                status: status.as_str(),
            })
            .inc();
        tracing::info!(submission_id = id, decision = status.as_str(), "kyc decided");
        Ok(decided)
    }

    /// An admin opens a submission's document: decrypted for this caller
    /// only, and the look is audited (`kyc.document_viewed`), whether it
    /// comes from the API or the console.
    #[tracing::instrument(name = "kyc.open_document", skip_all, fields(submission_id = %id, user_id = %admin.id))]
    pub async fn open_document(&self, admin: &User, id: &str) -> Result<(String, Vec<u8>), OperationError> {
        let mut conn = self.db.acquire().await?;
        let submission = kyc::find(&mut conn, id)
            .await?
            .ok_or(OperationError::NotFound("KYC submission"))?;
        let document_id = submission
            .document_id
            .ok_or(OperationError::NotFound("document for this submission"))?;
        let (content_type, sealed) = kyc::document(&mut conn, &document_id)
            .await?
            .ok_or(OperationError::NotFound("document for this submission"))?;
        audit::record(
            &mut conn,
            AuditEvent {
                actor_id: Some(&admin.id),
                action: "kyc.document_viewed",
                target_type: "kyc_submission",
                target_id: Some(id),
                request_id: crate::telemetry::request_id::current_string().as_deref(),
                details: json!({ "user_id": submission.user_id }),
            },
        )
        .await?;
        drop(conn);
        let bytes = self
            .sealer
            .open(&sealed)
            .map_err(|e| OperationError::Internal(e.to_string()))?;
        Ok((content_type, bytes))
    }
}
