//! The business rules, free of HTTP and SQL: money, the ledger, the escrow
//! and KYC state machines.

pub mod money;
