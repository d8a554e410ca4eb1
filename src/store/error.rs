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
    /// A transfer would take an account past [`MAX_BALANCE`](crate::domain::money::MAX_BALANCE)
    /// (the account id).
    #[error("the balance of {0} would pass its limit")]
    BalanceLimit(String),
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
            | StoreError::BalanceLimit(_)
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
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_unavailable_sqlstate(&code)),
        _ => false,
    }
}

/// SQLSTATEs that mean "the server is not there for us right now", not "this
/// query is wrong": connection exceptions (class 08), operator intervention
/// such as a terminated backend or a shutdown (57P01–57P05), and
/// insufficient resources such as too many connections or a full disk
/// (class 53).
pub fn is_unavailable_sqlstate(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P0") || code.starts_with("53")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_and_resource_sqlstates_mean_unavailable() {
        for code in ["08006", "08001", "57P01", "57P03", "53300", "53100"] {
            assert!(is_unavailable_sqlstate(code), "{code}");
        }
        for code in ["23505", "22021", "40001", "42P01", "57014"] {
            assert!(!is_unavailable_sqlstate(code), "{code}");
        }
    }
}
