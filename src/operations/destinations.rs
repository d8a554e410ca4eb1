//! Payout destinations: a user registers where their withdrawals go; the
//! payment provider names the account, and the name must be the user's
//! (see [`names_match`] for the rule) before any money can be sent there.

use serde_json::json;

use super::payments::Payments;
use crate::domain::DomainError;
use crate::domain::payout::{NewDestination, names_match};
use crate::gateway::{AccountQuery, GatewayError, observed};
use crate::operations::OperationError;
use crate::store::audit::AuditEvent;
use crate::store::destinations::{self, Destination};
use crate::store::users::User;
use crate::store::{Tx, kyc};

/// Most destinations one user may keep.
pub const MAX_PER_USER: usize = 20;

fn audit_destination(tx: &mut Tx, user: &User, action: &str, destination_id: &str, details: serde_json::Value) {
    tx.audit(AuditEvent {
        actor_id: Some(&user.id),
        action,
        target_type: "payout_destination",
        target_id: Some(destination_id),
        request_id: crate::telemetry::request_id::current_string().as_deref(),
        details,
    });
}

impl Payments {
    /// Registers a destination after the provider resolves the account's
    /// name and it matches the user's verified name. Requires approved KYC
    /// (the name is only "verified" once KYC is).
    #[tracing::instrument(name = "payout_destination.add", skip_all, fields(user_id = %user.id, kind = new.kind.as_str()))]
    pub async fn add_destination(&self, user: &User, new: NewDestination) -> Result<Destination, OperationError> {
        {
            let mut conn = self.db.acquire().await?;
            if !kyc::is_verified_user(&mut conn, user).await? {
                return Err(OperationError::Forbidden(
                    "an approved KYC is required to register a payout destination".into(),
                ));
            }
            if destinations::exists(&mut conn, &user.id, &new).await? {
                return Err(OperationError::Domain(DomainError::conflict(
                    "this account is already registered as a payout destination",
                )));
            }
            if destinations::list_for_user(&mut conn, &user.id).await?.len() >= MAX_PER_USER {
                return Err(OperationError::Domain(DomainError::conflict(format!(
                    "at most {MAX_PER_USER} payout destinations per user; remove one first"
                ))));
            }
        }
        // The provider is asked with no connection held.
        let call = self.gateway.resolve_account(AccountQuery {
            kind: new.kind,
            currency: new.currency,
            institution_code: &new.institution_code,
            account_number: &new.account_number,
            holder_name: &new.holder_name,
        });
        let resolved = match observed(&self.metrics, self.gateway.name(), "resolve", call).await {
            Ok(name) => name,
            Err(GatewayError::Rejected(reason)) => {
                return Err(OperationError::Domain(DomainError::invalid(
                    "account_number",
                    format!(
                        "could not be resolved by the payment provider ({reason}); check the number and the bank or operator code"
                    ),
                )));
            }
            Err(err) => return Err(OperationError::Gateway(err)),
        };
        // The resolved name is not echoed on a mismatch: that would make
        // this endpoint a lookup of strangers' account names.
        if !names_match(&resolved, &user.full_name) {
            return Err(OperationError::Domain(DomainError::invalid(
                "account_number",
                "belongs to an account whose name at the provider does not match your verified name \
                 (at least two names must match, in any order)",
            )));
        }
        let mut tx = self.db.begin().await?;
        let destination = destinations::insert(&mut tx, &user.id, &new, &resolved).await?;
        audit_destination(
            &mut tx,
            user,
            "payout_destination.added",
            &destination.id,
            json!({ "kind": destination.kind, "currency": destination.currency }),
        );
        tx.commit().await?;
        Ok(destination)
    }

    pub async fn list_destinations(&self, user: &User) -> Result<Vec<Destination>, OperationError> {
        let mut conn = self.db.acquire().await?;
        Ok(destinations::list_for_user(&mut conn, &user.id).await?)
    }

    /// Removes one of the user's destinations (withdrawals already sent to
    /// it keep their link to it).
    #[tracing::instrument(name = "payout_destination.remove", skip_all, fields(user_id = %user.id))]
    pub async fn remove_destination(&self, user: &User, id: &str) -> Result<(), OperationError> {
        let mut tx = self.db.begin().await?;
        if !destinations::remove(&mut tx, &user.id, id).await? {
            return Err(OperationError::NotFound("payout destination"));
        }
        audit_destination(&mut tx, user, "payout_destination.removed", id, json!({}));
        tx.commit().await?;
        Ok(())
    }
}
