//! Amani: escrow for a marketplace of clients and freelancers.
//!
//! Where things live:
//! - [`config`]: every setting, read once at start;
//! - [`startup`]: `Application::build` and the server loop;
//! - [`http`]: router, middleware, handlers, the problem+json error type;
//! - [`operations`]: business steps shared by handlers, workers and the CLI;
//! - [`store`]: the database (SQLite or PostgreSQL through one query body);
//! - [`health`]: operational checks shared by probes and watchdogs;
//! - [`telemetry`]: logs (and the seams for metrics, traces, Sentry);
//! - [`lifecycle`]: draining and shutdown.

// The masked configuration is one large `json!` literal.
#![recursion_limit = "256"]

pub mod alerts;
pub mod auth;
pub mod build_info;
pub mod cli;
pub mod config;
pub mod domain;
pub mod escrow;
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
