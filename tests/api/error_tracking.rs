//! Sentry, checked on the envelopes a local fake ingest endpoint received.

use std::time::Duration;

use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::server::{Server, eventually};

async fn fake_sentry() -> MockServer {
    let ingest = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&ingest)
        .await;
    ingest
}

fn dsn(ingest: &MockServer) -> String {
    format!("http://publickey@{}/42", ingest.address())
}

/// The events (not transactions or sessions) in what the fake received.
async fn events(ingest: &MockServer) -> Vec<(serde_json::Value, String)> {
    let mut events = Vec::new();
    for request in ingest.received_requests().await.unwrap_or_default() {
        let raw = String::from_utf8_lossy(&request.body).into_owned();
        for line in raw.lines() {
            // Event payloads name their platform; envelope and item
            // headers do not, and transactions say `"type":"transaction"`.
            if let Ok(item) = serde_json::from_str::<serde_json::Value>(line)
                && item.get("platform").is_some()
                && item.get("type").is_none()
            {
                events.push((item, raw.clone()));
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_route_reaches_sentry_with_request_context_and_no_secrets() {
    let ingest = fake_sentry().await;
    let server = Server::start(&[("SENTRY_DSN", &dsn(&ingest)), ("ENABLE_DEBUG_ROUTES", "true")]);
    server.wait_until_ready().await;
    let client = reqwest::Client::new();

    let response = client
        .get(server.url("/api/v1/debug/panic?token=query-secret"))
        .header(
            "authorization",
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl",
        )
        .header("cookie", "session=cookie-secret")
        .header("x-request-id", "sentry-test-1")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    // The server keeps serving after the panic.
    assert_eq!(
        client.get(server.url("/api/v1/ping")).send().await.unwrap().status(),
        200
    );

    let (event, raw) = eventually(Duration::from_secs(15), "the panic event", async || {
        events(&ingest).await.into_iter().next()
    })
    .await;
    assert_eq!(event["tags"]["request_id"], "sentry-test-1", "{event:#}");
    assert_eq!(event["tags"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(event["transaction"], "/api/v1/debug/panic");
    assert_eq!(event["environment"], "test");
    let release = event["release"].as_str().unwrap();
    assert!(
        release.starts_with(&format!("amani@{}+", env!("CARGO_PKG_VERSION"))),
        "{release}"
    );
    assert!(raw.contains("deliberate panic"));
    for secret in ["eyJhbGciOiJIUzI1NiJ9", "cookie-secret", "query-secret", "Bearer"] {
        assert!(!raw.contains(secret), "{secret} reached Sentry:\n{raw}");
    }
    assert_eq!(events(&ingest).await.len(), 1, "one event for one panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_errors_are_captured_with_their_cause_but_client_errors_are_not() {
    let ingest = fake_sentry().await;
    let server = Server::start(&[("SENTRY_DSN", &dsn(&ingest)), ("ENABLE_DEBUG_ROUTES", "true")]);
    let client = reqwest::Client::new();
    assert_eq!(
        client.get(server.url("/api/v1/nope")).send().await.unwrap().status(),
        404
    );
    let response = client.get(server.url("/api/v1/debug/error")).send().await.unwrap();
    assert_eq!(response.status(), 500);
    let body = response.text().await.unwrap();
    assert!(
        !body.contains("deliberate failure"),
        "the cause stays out of the body: {body}"
    );

    let (event, _) = eventually(Duration::from_secs(15), "the 5xx event", async || {
        events(&ingest).await.into_iter().next()
    })
    .await;
    assert!(event["message"].to_string().contains("deliberate failure"), "{event:#}");
    assert_eq!(event["transaction"], "/api/v1/debug/error");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(events(&ingest).await.len(), 1, "the 404 produced no event");
}

/// The event names the user by id; the email only with SENTRY_SEND_PII=true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_the_user_id_but_not_the_email_unless_configured() {
    for (send_pii, email_expected) in [("false", false), ("true", true)] {
        let ingest = fake_sentry().await;
        let server = Server::start(&[
            ("SENTRY_DSN", &dsn(&ingest)),
            ("ENABLE_DEBUG_ROUTES", "true"),
            ("SENTRY_SEND_PII", send_pii),
        ]);
        server.wait_until_ready().await;
        let client = reqwest::Client::new();
        let email = "sentry-user@example.com";
        let signup: serde_json::Value = client
            .post(server.url("/api/v1/auth/signup"))
            .json(&serde_json::json!({"email": email, "password": crate::helpers::PASSWORD, "full_name": "S", "role": "client"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let login: serde_json::Value = client
            .post(server.url("/api/v1/auth/login"))
            .json(&serde_json::json!({"email": email, "password": crate::helpers::PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let response = client
            .get(server.url("/api/v1/debug/error"))
            .bearer_auth(login["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        let (event, raw) = eventually(Duration::from_secs(15), "the 5xx event", async || {
            events(&ingest).await.into_iter().next()
        })
        .await;
        assert_eq!(event["user"]["id"], signup["id"], "{event:#}");
        assert_eq!(raw.contains(email), email_expected, "SENTRY_SEND_PII={send_pii}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_failures_send_nothing_to_sentry() {
    let ingest = fake_sentry().await;
    // A file where the database folder should be: /health answers 503.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blocked"), b"").unwrap();
    let url = format!("sqlite://{}/blocked/amani.db", dir.path().display());
    let server = Server::start(&[("SENTRY_DSN", &dsn(&ingest)), ("DATABASE_URL", &url)]);
    let client = reqwest::Client::new();
    for _ in 0..3 {
        assert_eq!(
            client.get(server.url("/api/v1/health")).send().await.unwrap().status(),
            503
        );
        assert_eq!(
            client
                .get(server.url("/api/v1/readiness"))
                .send()
                .await
                .unwrap()
                .status(),
            503
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(events(&ingest).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_dsn_nothing_is_sent() {
    let ingest = fake_sentry().await;
    // The DSN is empty; the fake is there to notice anything at all.
    let server = Server::start(&[("SENTRY_DSN", ""), ("ENABLE_DEBUG_ROUTES", "true")]);
    let response = reqwest::get(server.url("/api/v1/debug/panic")).await.unwrap();
    assert_eq!(response.status(), 500);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(ingest.received_requests().await.unwrap_or_default().is_empty());
    let logs = server.logs();
    assert!(
        logs.iter().any(|l| l["message"] == "panic"),
        "the panic is still logged: {logs:#?}"
    );
}
