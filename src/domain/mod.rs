//! The business rules, free of HTTP and SQL: money, accounts, the ledger,
//! the escrow and KYC state machines.

pub mod account;
pub mod escrow;
pub mod kyc;
pub mod money;
pub mod payment;
pub mod payout;

/// A rule the request broke. The HTTP layer maps `Invalid` to 422 and
/// `Conflict` (a state that does not allow the action) to 409.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{field} {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{0}")]
    Conflict(String),
}

impl DomainError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> DomainError {
        DomainError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub fn conflict(reason: impl Into<String>) -> DomainError {
        DomainError::Conflict(reason.into())
    }
}
