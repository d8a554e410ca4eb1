//! Sentry: panics and 5xx responses become events carrying the request id,
//! the route template, the release, the environment, the user id and the
//! OpenTelemetry trace id; info and warn logs become breadcrumbs.
//!
//! With `SENTRY_DSN` empty nothing here runs: no client, no network, no cost.
//! A before-send hook removes what Sentry's defaults would keep (auth and
//! cookie headers, request bodies, token-looking strings, emails unless
//! `SENTRY_SEND_PII=true`) and drops events from the probe routes.

use std::borrow::Cow;

use secrecy::ExposeSecret;
use sentry::protocol::{Event, Level, Value};
use sentry::{Breadcrumb, ClientInitGuard};

use crate::build_info::BuildInfo;
use crate::config::Config;

/// Routes whose errors are probe noise, never worth an event.
const PROBE_ROUTES: [&str; 4] = ["/api/v1/ping", "/api/v1/health", "/api/v1/readiness", "/metrics"];

/// Headers that never leave the process.
const SECRET_HEADERS: [&str; 7] = [
    "authorization",
    "cookie",
    "set-cookie",
    // FinCra's webhook signature, and its API keys on outbound calls.
    "signature",
    "api-key",
    "x-pub-key",
    "idempotency-key",
];

/// Starts the Sentry client. Must run before the async runtime starts, so
/// the panic handler is in place for every thread.
pub fn init(config: &Config, build: &BuildInfo) -> Option<ClientInitGuard> {
    let dsn = config.sentry.dsn.as_ref()?;
    let send_pii = config.sentry.send_pii;
    let options = sentry::ClientOptions::new()
        .dsn(dsn.expose_secret())
        .release(build.release())
        .environment(config.environment.as_str().to_owned())
        .traces_sample_rate(config.sentry.traces_sample_rate)
        .send_default_pii(false)
        .attach_stacktrace(true)
        .before_send(move |event| scrub_event(event, send_pii))
        .before_breadcrumb(scrub_breadcrumb);
    Some(sentry::init(options))
}

/// The `tracing` layer turning info/warn/error events into breadcrumbs (an
/// error log alone is not an event: 5xx responses are captured explicitly).
pub fn breadcrumbs<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer;
    sentry::integrations::tracing::BreadcrumbLayer::new().with_filter(tracing_subscriber::filter::filter_fn(
        |metadata| {
            metadata.is_event()
                && matches!(
                    *metadata.level(),
                    tracing::Level::INFO | tracing::Level::WARN | tracing::Level::ERROR
                )
        },
    ))
}

/// Tags the current request's scope (a no-op without a Sentry client).
pub fn tag_request(request_id: &str, trace: Option<super::traces::TraceIds>) {
    sentry::configure_scope(|scope| {
        scope.set_tag("request_id", request_id);
        if let Some(ids) = trace {
            scope.set_tag("trace_id", ids.trace_id);
            scope.set_tag("span_id", ids.span_id);
        }
    });
}

/// Names the current scope's transaction after the matched route template.
pub fn tag_route(route: &str) {
    sentry::configure_scope(|scope| scope.set_transaction(Some(route)));
}

/// Attaches the authenticated user: the id always, the email only when
/// `SENTRY_SEND_PII=true`.
pub fn tag_user(user_id: &str, email: Option<&str>, send_pii: bool) {
    sentry::configure_scope(|scope| {
        scope.set_user(Some(sentry::User {
            id: Some(user_id.to_owned()),
            email: email.filter(|_| send_pii).map(str::to_owned),
            ..Default::default()
        }));
    });
}

/// Reports a 5xx response with its internal cause chain.
pub fn capture_server_error(status: u16, route: &str, cause: &str) {
    if sentry::Hub::current().client().is_none() {
        return;
    }
    let event = Event {
        level: Level::Error,
        message: Some(cause.to_owned()),
        transaction: Some(route.to_owned()),
        tags: [("http.status_code".to_owned(), status.to_string())]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    sentry::capture_event(event);
}

fn scrub_event(mut event: Event<'static>, send_pii: bool) -> Option<Event<'static>> {
    let route = event
        .transaction
        .as_deref()
        .or_else(|| event.request.as_ref().and_then(|r| r.url.as_ref()).map(|u| u.path()));
    if route.is_some_and(|r| PROBE_ROUTES.contains(&r)) {
        return None;
    }
    if let Some(request) = event.request.as_mut() {
        request.data = None;
        request.cookies = None;
        request.query_string = None;
        request
            .headers
            .retain(|name, _| !SECRET_HEADERS.contains(&name.to_ascii_lowercase().as_str()));
        if let Some(url) = request.url.as_mut() {
            url.set_query(None);
        }
    }
    if let Some(user) = event.user.as_mut()
        && !send_pii
    {
        user.email = None;
        user.ip_address = None;
        user.username = None;
    }
    if let Some(message) = event.message.take() {
        event.message = Some(redact_tokens(&message).into_owned());
    }
    for exception in event.exception.values.iter_mut() {
        if let Some(value) = exception.value.take() {
            exception.value = Some(redact_tokens(&value).into_owned());
        }
    }
    for value in event.extra.values_mut() {
        redact_value(value);
    }
    Some(event)
}

fn scrub_breadcrumb(mut breadcrumb: Breadcrumb) -> Option<Breadcrumb> {
    breadcrumb.data.retain(|key, _| !super::json::is_secret_field(key));
    for value in breadcrumb.data.values_mut() {
        redact_value(value);
    }
    if let Some(message) = breadcrumb.message.take() {
        breadcrumb.message = Some(redact_tokens(&message).into_owned());
    }
    Some(breadcrumb)
}

fn redact_value(value: &mut Value) {
    if let Value::String(text) = value {
        *text = redact_tokens(text).into_owned();
    }
}

/// Replaces anything that looks like a bearer token or JWT (three base64url
/// segments) with `[redacted]`.
pub fn redact_tokens(text: &str) -> Cow<'_, str> {
    let looks_secret = |word: &str| {
        let parts: Vec<&str> = word.split('.').collect();
        let jwt = parts.len() == 3
            && parts
                .iter()
                .all(|p| p.len() >= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        jwt || word.starts_with("eyJ")
    };
    if !text
        .split_whitespace()
        .any(|w| looks_secret(w.trim_matches(|c: char| !c.is_ascii_alphanumeric())))
    {
        return Cow::Borrowed(text);
    }
    let words: Vec<String> = text
        .split(' ')
        .map(|w| {
            if looks_secret(w.trim_matches(|c: char| !c.is_ascii_alphanumeric())) {
                "[redacted]".to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect();
    Cow::Owned(words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_from_free_text() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        let text = format!("login failed for token {jwt} at step 2");
        assert_eq!(redact_tokens(&text), "login failed for token [redacted] at step 2");
        assert_eq!(redact_tokens("nothing secret here"), "nothing secret here");
    }

    #[test]
    fn probe_events_are_dropped_and_headers_scrubbed() {
        let probe = Event {
            transaction: Some("/api/v1/health".into()),
            ..Default::default()
        };
        assert!(scrub_event(probe, false).is_none());

        let mut request = sentry::protocol::Request::default();
        request.headers.insert("Authorization".into(), "Bearer abc".into());
        request.headers.insert("user-agent".into(), "test".into());
        request.data = Some("{\"password\":\"x\"}".into());
        let event = Event {
            transaction: Some("/api/v1/auth/login".into()),
            request: Some(request),
            user: Some(sentry::User {
                id: Some("u1".into()),
                email: Some("a@b.c".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let event = scrub_event(event, false).expect("kept");
        let request = event.request.unwrap();
        assert!(!request.headers.contains_key("Authorization"));
        assert!(request.headers.contains_key("user-agent"));
        assert!(request.data.is_none());
        let user = event.user.unwrap();
        assert_eq!(user.id.as_deref(), Some("u1"));
        assert!(user.email.is_none());
    }
}
