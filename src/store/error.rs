//! What can go wrong with the database, and which of it means "the
//! database is not there" (503) rather than a bug (500).

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, or its schema is not ready to serve.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A debit the account cannot cover (the account id).
    #[error("insufficient funds in {0}")]
    InsufficientFunds(String),
    /// A unique constraint refused the write: `what` already exists.
    #[error("{0} already exists")]
    Duplicate(&'static str),
    /// A row this code wrote (or must exist by our own invariants) is not
    /// there: our bug or broken data, a 500 — not "database unavailable".
    #[error("{0}")]
    Missing(String),
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// True for failures that mean "the database is not there", as opposed to
    /// a bad query or a constraint: those become 503, the rest 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Sqlx(err) => is_connection_error(err),
            StoreError::Duplicate(_)
            | StoreError::InsufficientFunds(_)
            | StoreError::Missing(_)
            | StoreError::Migrate(_) => false,
        }
    }
}

/// Turns a unique-constraint violation into [`StoreError::Duplicate`], at
/// the query that can cause it.
pub fn map_duplicate(what: &'static str) -> impl Fn(StoreError) -> StoreError {
    move |err| match &err {
        StoreError::Sqlx(sqlx::Error::Database(db)) if db.is_unique_violation() => StoreError::Duplicate(what),
        _ => err,
    }
}

pub(crate) fn is_connection_error(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_)
    )
}
