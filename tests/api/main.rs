//! The one integration-test binary: the real application over real HTTP on
//! loopback, against a real SQLite file and a real PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod hardening;
mod helpers;
mod proxy;
mod server;
mod services;

mod accounts;
mod alerts;
mod backup;
mod cli;
mod console;
mod error_tracking;
mod escrow;
mod events;
mod fake_fincra;
mod http_errors;
mod kyc;
mod ledger_model;
mod logs;
mod metrics;
mod monitoring;
mod payments;
mod probes;
mod readme;
mod schedule;
mod service;
mod speed;
mod traces;
