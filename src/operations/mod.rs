//! The operations layer: one function per business step, called the same
//! way by HTTP handlers, background workers and CLI commands.
//!
//! ```text
//! http/  cli  workers ──▶ operations/ ──▶ domain/  store/  gateway/  telemetry/
//! ```
//!
//! An operation opens its own (short) transactions, enforces the domain
//! rule, writes the audit event, and carries a span named for the business
//! step. It takes what it uses (a [`payments::Payments`] holds the database,
//! the gateway, metrics and alerts), never the HTTP state, so a worker or a
//! command can run it without a server. Handlers extract, call one
//! operation, and render.
//!
//! | module | business steps |
//! |---|---|
//! | [`accounts`] | sign up, log in, profile, change password, deactivate |
//! | [`kyc`] | submit, resubmit, review |
//! | [`projects`] | create, edit, delete, send, accept, dispute, cancel, resolve |
//! | [`milestones`] | add, edit, submit, approve or reject |
//! | [`escrow`] | hold, release, refund (money inside the platform) |
//! | [`payments`] | deposit, withdraw, settle a provider's answer, webhooks |
//! | [`reconcile`] | the worker that asks the provider about what stayed pending |
//! | [`destinations`] | where payouts go |
//! | [`events`] | what operations emit; the events API |
//! | [`webhooks`] | outbound webhook endpoints (admin) |
//! | [`deliveries`] | the worker that delivers events to endpoints |
//! | [`scheduler`] | the worker that does timed work (auto-release, funding deadlines) |
//!
//! Every operation returns an [`OperationError`]; `http::error` maps it to a
//! problem document.

pub mod accounts;
pub mod deliveries;
pub mod destinations;
pub mod escrow;
pub mod events;
pub mod kyc;
pub mod milestones;
pub mod payments;
pub mod projects;
pub mod reconcile;
pub mod scheduler;
pub mod webhooks;

use crate::domain::DomainError;
use crate::gateway::GatewayError;
use crate::store::StoreError;

/// Why an operation did not happen. Nothing it wrote is kept.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    /// Missing, or not the caller's to see (the same answer, so ids cannot
    /// be probed).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request is well-formed but breaks a rule (422, with this detail).
    #[error("{0}")]
    Invalid(String),
    /// A request that cannot be acted on as sent (400).
    #[error("{0}")]
    BadRequest(String),
    /// Wrong credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Too many failed attempts: retry after this long (429).
    #[error("too many failed attempts; retry later")]
    Locked(std::time::Duration),
    /// Too much slow work at once (password hashing): retry shortly (503).
    #[error("too busy; retry shortly")]
    Busy,
    /// Our own fault, not the caller's (500; the detail goes to logs only).
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// A state that does not allow the action (409).
pub fn conflict(reason: impl Into<String>) -> OperationError {
    OperationError::Domain(DomainError::conflict(reason))
}
