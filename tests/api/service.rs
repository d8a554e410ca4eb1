//! Service endpoints, docs and the HTTP hygiene every response gets.

use crate::both_engines;
use crate::helpers::{Engine, TestApp, TestDb, json};

both_engines!(service_identity_and_version_describe_the_build,);

async fn service_identity_and_version_describe_the_build(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;

    let (status, root) = json(app.get("/api/v1/").await).await;
    assert_eq!(status, 200);
    assert_eq!(root["name"], "Amani");
    assert_eq!(root["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(root["environment"], "test");

    let (status, version) = json(app.get("/api/v1/version").await).await;
    assert_eq!(status, 200);
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    assert!(version["rustc"].as_str().unwrap().starts_with("rustc "), "{version}");
    let sha = version["git_sha"].as_str().unwrap();
    assert!(sha == "unknown" || sha.chars().all(|c| c.is_ascii_hexdigit()), "{sha}");
    assert!(version["build_time"].as_str().unwrap().ends_with('Z'), "{version}");
}

#[tokio::test]
async fn openapi_document_lists_the_service_endpoints_and_docs_work_offline() {
    let db = TestDb::create(Engine::Sqlite).await;
    let app = TestApp::spawn(&db).await;

    let (status, doc) = json(app.get("/api-docs/openapi.json").await).await;
    assert_eq!(status, 200);
    for path in [
        "/api/v1/",
        "/api/v1/version",
        "/api/v1/ping",
        "/api/v1/health",
        "/api/v1/readiness",
    ] {
        assert!(
            doc["paths"][path]["get"].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());

    let page = app.get("/docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Everything the page loads comes from this server: no CDN.
    for attr in ["src=\"http", "href=\"http", "src='http", "href='http"] {
        assert!(!html.contains(attr), "external asset in docs page: {attr}");
    }
    let bundle = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status(), 200);
    // Nor does it send our document to swagger.io's online validator.
    let init = app.get("/docs/swagger-initializer.js").await.text().await.unwrap();
    assert!(init.contains(r#""validatorUrl": "none""#), "{init}");
    assert!(init.contains("/api-docs/openapi.json"), "{init}");
}

#[tokio::test]
async fn responses_carry_security_headers_and_hsts_only_when_forcing_https() {
    let db = TestDb::create(Engine::Sqlite).await;
    let app = TestApp::spawn(&db).await;
    let response = app.get("/api/v1/ping").await;
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    assert!(response.headers().get("strict-transport-security").is_none());
    // Errors get them too.
    let missing = app.get("/nope").await;
    assert_eq!(missing.headers()["x-content-type-options"], "nosniff");

    let https = TestApp::spawn_ready(&db.url, &[("FORCE_HTTPS", "true")]).await;
    let response = https.get("/api/v1/ping").await;
    assert!(
        response.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let db = TestDb::create(Engine::Sqlite).await;
    let app = TestApp::spawn_ready(&db.url, &[("ALLOWED_ORIGINS", "https://app.example")]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/ping"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example");
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());
}
