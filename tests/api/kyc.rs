//! Identity verification: submissions, decisions, privacy.

use reqwest::Method;
use reqwest::multipart::{Form, Part};

use crate::both_engines;
use crate::helpers::{Engine, TestApp, TestDb, TestUser, json};

pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR-fake-image-bytes-for-tests";

pub fn form(kind: &str, id_number: &str, document: Option<(&'static [u8], &str, &str)>) -> Form {
    let form = Form::new()
        .text("type", kind.to_owned())
        .text("nin_or_passport", id_number.to_owned());
    match document {
        Some((bytes, name, mime)) => form.part(
            "document",
            Part::bytes(bytes).file_name(name.to_owned()).mime_str(mime).unwrap(),
        ),
        None => form,
    }
}

pub async fn submit(app: &TestApp, user: &TestUser, form: Form) -> reqwest::Response {
    app.authed(Method::POST, "/api/v1/kyc/submit", &user.token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

both_engines!(
    a_submission_is_reviewed_and_its_id_number_shown_only_by_last_four,
    a_rejected_submission_can_be_resubmitted_and_nothing_else_can,
    users_cannot_see_or_resubmit_each_others_submissions,
    oversized_and_mislabelled_documents_are_refused,
);

async fn a_submission_is_reviewed_and_its_id_number_shown_only_by_last_four(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let user = app.user("freelancer").await;

    let (status, submission) = json(
        submit(
            &app,
            &user,
            form("kyc", "AB-1234 5678", Some((PNG, "id.png", "image/png"))),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{submission}");
    assert_eq!(submission["status"], "pending");
    assert_eq!(submission["id_number_last4"], "5678");
    assert_eq!(submission["has_document"], true);
    assert!(!submission.to_string().contains("AB12345678"));
    let id = submission["id"].as_str().unwrap().to_owned();

    // One pending at a time.
    let (status, _) = json(submit(&app, &user, form("kyc", "AB12345678", None)).await).await;
    assert_eq!(status, 409);

    // The review queue shows it; the gauge counts it.
    let (status, queue) = json(
        app.authed(Method::GET, "/api/v1/admin/kyc?status=pending", &admin.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(queue["total"], 1);
    assert_eq!(queue["items"][0]["user_id"], user.id.as_str());
    crate::metrics::scrape_until(&app, "amani_kyc_pending 1").await;

    // The document comes back to the admin exactly as uploaded; never to the user.
    let document = app
        .authed(Method::GET, &format!("/api/v1/admin/kyc/{id}/document"), &admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(document.status(), 200);
    assert_eq!(document.headers()["content-type"], "image/png");
    assert_eq!(document.bytes().await.unwrap().as_ref(), PNG);
    // Each look at an identity document is in the audit trail.
    let trail = crate::accounts::audit_of(&app, &admin, &id).await;
    assert_eq!(trail[0]["action"], "kyc.document_viewed");
    assert_eq!(trail[0]["actor_id"], admin.id.as_str());
    let refused = app
        .authed(Method::GET, &format!("/api/v1/admin/kyc/{id}/document"), &user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // Stored sealed: the database holds neither the number nor the image.
    let mut conn = app.state.db.acquire().await.unwrap();
    let (conn_ref, obs) = amani::store::DbHandle::parts(&mut conn);
    let (sealed,): (String,) = obs
        .run(
            "test.sealed",
            sqlx::query_as("select id_number_sealed from kyc_submissions").fetch_one(conn_ref),
        )
        .await
        .unwrap();
    assert!(sealed.starts_with("v1:") && !sealed.contains("AB12345678"));
    assert_eq!(app.state.sealer.open(&sealed).unwrap(), b"AB12345678");

    // Approve; a decision is final.
    let (status, approved) = json(
        app.authed(Method::POST, &format!("/api/v1/admin/kyc/{id}/approve"), &admin.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["reviewed_by"], admin.id.as_str());
    let again = app
        .authed(Method::POST, &format!("/api/v1/admin/kyc/{id}/reject"), &admin.token)
        .json(&serde_json::json!({"reason": "changed my mind"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let (_, mine) = json(
        app.authed(Method::GET, "/api/v1/kyc/status", &user.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(mine[0]["status"], "approved");
    // Verified users cannot submit again.
    assert_eq!(submit(&app, &user, form("kyc", "ZZ99999999", None)).await.status(), 409);
    let mut conn = app.state.db.acquire().await.unwrap();
    assert!(amani::store::kyc::is_verified(&mut conn, &user.id).await.unwrap());
}

async fn a_rejected_submission_can_be_resubmitted_and_nothing_else_can(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let user = app.user("client").await;
    let (_, first) = json(submit(&app, &user, form("kyb", "RC123456", None)).await).await;
    let first_id = first["id"].as_str().unwrap().to_owned();

    // Pending cannot be resubmitted.
    let early = app
        .authed(Method::POST, &format!("/api/v1/kyc/resubmit/{first_id}"), &user.token)
        .multipart(form("kyb", "RC123456", None))
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 409);

    let (status, rejected) = json(
        app.authed(
            Method::POST,
            &format!("/api/v1/admin/kyc/{first_id}/reject"),
            &admin.token,
        )
        .json(&serde_json::json!({"reason": "the number does not match the certificate"}))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        rejected["rejection_reason"],
        "the number does not match the certificate"
    );
    let (status, _) = json(
        app.authed(
            Method::POST,
            &format!("/api/v1/admin/kyc/{first_id}/reject"),
            &admin.token,
        )
        .json(&serde_json::json!({"reason": " "}))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "an empty reason is refused before the state is looked at");

    let (status, second) = json(
        app.authed(Method::POST, &format!("/api/v1/kyc/resubmit/{first_id}"), &user.token)
            .multipart(form("kyb", "RC7654321", None))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["resubmission_of"], first_id.as_str());
    assert_eq!(second["status"], "pending");
    let (_, mine) = json(
        app.authed(Method::GET, "/api/v1/kyc/status", &user.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(mine.as_array().unwrap().len(), 2);
}

async fn users_cannot_see_or_resubmit_each_others_submissions(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let alice = app.user("client").await;
    let bob = app.user("client").await;
    let (_, submission) = json(submit(&app, &alice, form("kyc", "A9876543", None)).await).await;
    let id = submission["id"].as_str().unwrap().to_owned();
    app.authed(Method::POST, &format!("/api/v1/admin/kyc/{id}/reject"), &admin.token)
        .json(&serde_json::json!({"reason": "blurry"}))
        .send()
        .await
        .unwrap();

    let (_, bobs) = json(
        app.authed(Method::GET, "/api/v1/kyc/status", &bob.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bobs, serde_json::json!([]));
    for target in [id.clone(), uuid::Uuid::new_v4().to_string()] {
        let response = app
            .authed(Method::POST, &format!("/api/v1/kyc/resubmit/{target}"), &bob.token)
            .multipart(form("kyc", "B1234567", None))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "someone else's and a missing id look the same");
    }
}

async fn oversized_and_mislabelled_documents_are_refused(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let user = app.user("freelancer").await;
    // An executable named like a picture.
    let response = submit(
        &app,
        &user,
        form(
            "kyc",
            "A1234567",
            Some((b"MZ\x90\x00not-an-image", "id.png", "image/png")),
        ),
    )
    .await;
    assert_eq!(response.status(), 415);
    let problem: serde_json::Value = response.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("PNG, JPEG or PDF"));

    let big: &'static [u8] = Box::leak({
        let mut bytes = b"%PDF-1.7\n".to_vec();
        bytes.resize(5 * 1024 * 1024 + 1, b'x');
        bytes.into_boxed_slice()
    });
    let response = submit(
        &app,
        &user,
        form("kyc", "A1234567", Some((big, "id.pdf", "application/pdf"))),
    )
    .await;
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["content-type"], "application/problem+json");

    let (status, problem) = json(submit(&app, &user, form("passport", "A1234567", None)).await).await;
    assert_eq!(status, 422);
    assert!(problem["detail"].as_str().unwrap().contains("type"));
    // Nothing was stored by the refused attempts.
    let (_, mine) = json(
        app.authed(Method::GET, "/api/v1/kyc/status", &user.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(mine, serde_json::json!([]));
}

/// The log of a whole sign-up, login and KYC flow holds no password, token,
/// ID number or image byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_of_a_full_account_and_kyc_flow_holds_no_secret() {
    let server = crate::server::Server::start(&[("LOG_LEVEL", "trace")]);
    server.wait_until_ready().await;
    let client = reqwest::Client::new();
    let password = "a very secret passphrase";
    let signup = client
        .post(server.url("/api/v1/auth/signup"))
        .json(&serde_json::json!({"email": "flow@example.com", "password": password, "full_name": "Flow", "role": "client"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 201);
    let login: serde_json::Value = client
        .post(server.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "flow@example.com", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let response = client
        .post(server.url("/api/v1/kyc/submit"))
        .bearer_auth(&token)
        .multipart(form("kyc", "NIN99887766", Some((PNG, "me.png", "image/png"))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    client
        .post(server.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "flow@example.com", "password": "wrong-but-secret-guess"}))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let log = server.output().join("\n");
    assert!(log.contains("user signed up"), "the flow was logged");
    for secret in [
        password,
        "wrong-but-secret-guess",
        token.as_str(),
        "NIN99887766",
        "99887766",
        "IHDR-fake-image",
    ] {
        assert!(!log.contains(secret), "{secret:?} reached the log");
    }
    let token_signature = token.rsplit('.').next().unwrap();
    assert!(!log.contains(token_signature));
}
