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
//! Money that crosses to a payment provider lives here: [`payments`] (deposit,
//! withdrawal, settling an answer, webhooks), [`reconcile`] (the worker that
//! asks the provider about what stayed pending) and [`destinations`] (where
//! payouts go). Escrow movements inside the platform are still in
//! `crate::escrow`, to move here with the rest of issue 13.

pub mod destinations;
pub mod payments;
pub mod reconcile;
