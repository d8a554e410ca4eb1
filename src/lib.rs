//! Amani: escrow for a marketplace of clients and freelancers.
//!
//! `ARCHITECTURE.md` (at the repository root) draws the layers and the rule
//! of the arrows; the `architecture` tests enforce it. Where things live:
//! - [`config`]: every setting, read once at start;
//! - [`startup`]: `Application::build` and the server loop;
//! - [`http`]: router, middleware, handlers, the problem+json error type;
//! - [`operations`]: business steps shared by handlers, workers and the CLI;
//! - [`store`]: the database (SQLite or PostgreSQL through one query body);
//! - [`health`]: operational checks shared by probes and watchdogs;
//! - [`domain`]: the rules, with no I/O; [`gateway`]: payment providers;
//! - [`alerts`]: Slack and PagerDuty, and the watchdogs;
//! - [`telemetry`]: logs, metrics, traces, Sentry, the request id;
//! - [`lifecycle`]: draining and shutdown.

pub mod alerts;
#[cfg(test)]
mod architecture;
pub mod auth;
pub mod build_info;
pub mod cli;
pub mod config;
pub mod domain;
#[cfg(test)]
mod fuzz;
pub mod gateway;
pub mod health;
pub mod http;
pub mod lifecycle;
pub mod operations;
pub mod ops;
pub mod ratelimit;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod timestamp;
