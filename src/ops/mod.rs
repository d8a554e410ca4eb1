//! Operations: backup, verification and restore.

pub mod backup;
pub mod restore;
