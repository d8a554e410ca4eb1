//! The request id as a value and as task-local context: the id of the
//! request a task is serving, readable by any layer (error bodies, log lines,
//! the audit trail, outbound calls) without threading it through every
//! signature. The HTTP middleware that assigns it lives in
//! `http::request_id`; this module has no HTTP dependency, so the store, the
//! gateway and the operations can read it without importing `http`.

use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

/// Longest caller-supplied id we keep; longer ones are replaced.
pub const MAX_LEN: usize = 128;

tokio::task_local! {
    pub(crate) static CURRENT: RequestId;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// Keeps a caller's id only if it is short and made of `[A-Za-z0-9._:-]`,
    /// so it is safe in headers, logs and JSON without escaping surprises.
    pub fn parse(raw: &str) -> Option<RequestId> {
        let sane = !raw.is_empty()
            && raw.len() <= MAX_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        sane.then(|| RequestId(raw.into()))
    }

    pub fn generate() -> RequestId {
        RequestId(Uuid::new_v4().to_string().into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of the request this task is serving, if any.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(|id| id.clone()).ok()
}

/// Runs `fut` as part of request `id` (for work spawned on its behalf).
pub async fn scope<F: Future>(id: RequestId, fut: F) -> F::Output {
    CURRENT.scope(id, fut).await
}

/// The current request id as an owned string (for audit rows and records).
pub fn current_string() -> Option<String> {
    current().map(|id| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_and_hostile_ones_refused() {
        assert!(RequestId::parse("abc-123_x.y:z").is_some());
        assert!(RequestId::parse(&"a".repeat(MAX_LEN)).is_some());
        assert!(RequestId::parse(&"a".repeat(MAX_LEN + 1)).is_none());
        assert!(RequestId::parse("a\r\nSet-Cookie: x").is_none());
        assert!(RequestId::parse("\"quoted\"").is_none());
        assert!(RequestId::parse("").is_none());
        assert!(RequestId::parse("with space").is_none());
    }
}
