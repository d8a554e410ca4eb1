//! The operator console (`/console`) over real HTTP, and the admin API it
//! matches: sessions and their cookie, CSRF, the KYC queue, disputes, users,
//! reset links, the audit trail, the operator view.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_engines;
use crate::escrow::{assert_books_balance, available, money_post, verified_user};
use crate::helpers::{Engine, PASSWORD, TestApp, TestDb, TestUser, json};

both_engines!(
    the_console_needs_an_admin_session_and_a_csrf_token_for_every_action,
    an_admin_works_the_kyc_queue_and_a_split_dispute_in_the_console,
    a_reset_link_sets_a_password_once_from_the_console_or_the_api,
    the_admin_api_searches_accounts,
    the_operator_view_charts_the_traffic_it_serves,
    a_session_that_is_not_an_admins_gets_403_on_every_console_route,
    a_disputed_project_is_released_to_the_seller_from_the_console,
);

/// A logged-in console session: its cookie and, from the last page read,
/// the CSRF token its forms carry.
pub struct Session {
    cookie: String,
}

fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// Opens the login page (which sets its login cookie and token), then
/// posts the form as a browser would.
async fn console_login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let page = app.get("/console/login").await;
    assert_eq!(page.status(), 200);
    let set_cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let html = page.text().await.unwrap();
    let start = html.find("name=\"login_token\" value=\"").unwrap() + 26;
    let token = html[start..start + html[start..].find('"').unwrap()].to_owned();
    app.client
        .post(app.url("/console/login"))
        .header("cookie", cookie)
        .form(&[
            ("login_token", token.as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

pub async fn log_in(app: &TestApp, admin: &TestUser) -> Session {
    let response = console_login(app, &admin.email, PASSWORD).await;
    assert_eq!(response.status(), 303);
    let set_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("amani_console="))
        .unwrap()
        .to_owned();
    Session {
        cookie: set_cookie.split(';').next().unwrap().to_owned(),
    }
}

impl Session {
    pub async fn get(&self, app: &TestApp, path: &str) -> (u16, String) {
        let response = app
            .client
            .get(app.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Posts a form; returns the status and the `Location` or the body.
    async fn post(&self, app: &TestApp, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let response = app
            .client
            .post(app.url(path))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap();
        (status, location.unwrap_or(body))
    }

    async fn csrf(&self, app: &TestApp) -> String {
        let (status, page) = self.get(app, "/console/users").await;
        assert_eq!(status, 200, "{page}");
        csrf_of(&page)
    }
}

async fn is_active(app: &TestApp, admin: &TestUser, user: &TestUser) -> bool {
    let (status, found) = json(
        app.authed(Method::GET, &format!("/api/v1/admin/users?q={}", user.id), &admin.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{found}");
    found["items"][0]["is_active"].as_bool().unwrap()
}

async fn the_console_needs_an_admin_session_and_a_csrf_token_for_every_action(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let client = app.user("client").await;

    // No session: every page sends the browser to the login form.
    for path in [
        "/console",
        "/console/kyc",
        "/console/users",
        "/console/audit",
        "/console/live",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(response.headers()["location"], "/console/login", "{path}");
    }
    // A bearer token is not a console session.
    let response = app.authed(Method::GET, "/console", &admin.token).send().await.unwrap();
    assert_eq!(response.status(), 303);

    // A login form posted from elsewhere (no login cookie and token) is
    // refused before the password is even checked.
    let forged = app
        .client
        .post(app.url("/console/login"))
        .form(&[
            ("login_token", "guess"),
            ("email", admin.email.as_str()),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(
        !forged
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("amani_console="))
    );

    // A non-admin with the right password is refused, and gets no cookie.
    let response = console_login(&app, &client.email, PASSWORD).await;
    assert_eq!(response.status(), 403);
    assert!(
        !response
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("amani_console="))
    );
    // A wrong password: the form again, with why.
    let response = console_login(&app, &admin.email, "not-the-password").await;
    assert_eq!(response.status(), 401);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("email or password is incorrect")
    );

    // An admin's cookie: HttpOnly, SameSite=Strict, scoped to the console,
    // not Secure over plain http in development.
    let response = console_login(&app, &admin.email, PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/console");
    let cookies: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("amani_console_login=;") && c.contains("Max-Age=0")),
        "the login token is spent: {cookies:?}"
    );
    let set_cookie = cookies
        .iter()
        .find(|c| c.starts_with("amani_console="))
        .unwrap()
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=28800"] {
        assert!(set_cookie.contains(flag), "{flag} in {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    let session = Session {
        cookie: set_cookie.split(';').next().unwrap().to_owned(),
    };

    // Pages are never cached, never framed, and allow only our own assets.
    let response = app
        .client
        .get(app.url("/console"))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    let csp = response.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(response.text().await.unwrap().contains("Operator view"));

    // Every action needs the session's CSRF token; without it nothing happens.
    let csrf = session.csrf(&app).await;
    let deactivate = format!("/console/users/{}/deactivate", client.id);
    let (status, body) = session.post(&app, &deactivate, &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("security token"), "{body}");
    let (status, _) = session.post(&app, &deactivate, &[("csrf", "forged")]).await;
    assert_eq!(status, 403);
    assert!(is_active(&app, &admin, &client).await, "a refused form changed nothing");
    let (status, location) = session.post(&app, &deactivate, &[("csrf", &csrf)]).await;
    assert_eq!(
        (status, location.as_str()),
        (303, format!("/console/users/{}?notice=deactivated", client.id).as_str())
    );
    assert!(!is_active(&app, &admin, &client).await);
    let (status, _) = session
        .post(
            &app,
            &format!("/console/users/{}/reactivate", client.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, 303);
    assert!(is_active(&app, &admin, &client).await);

    // The operator view's own refresh is not activity; a page view is.
    let last_seen = |app: &TestApp| {
        let state = app.state.clone();
        async move {
            let mut conn = state.db.acquire().await.unwrap();
            let (conn, obs) = amani::store::DbHandle::parts(&mut conn);
            let (seen,): (String,) = obs
                .run(
                    "test.seen",
                    sqlx::query_as("select last_seen_at from console_sessions").fetch_one(conn),
                )
                .await
                .unwrap();
            seen
        }
    };
    let five_minutes_ago = amani::timestamp::format(time::OffsetDateTime::now_utc() - time::Duration::minutes(5));
    let mut conn = app.state.db.acquire().await.unwrap();
    let (conn_ref, obs) = amani::store::DbHandle::parts(&mut conn);
    obs.run(
        "test.age",
        sqlx::query("update console_sessions set last_seen_at = $1")
            .bind(&five_minutes_ago)
            .execute(conn_ref),
    )
    .await
    .unwrap();
    drop(conn);
    assert_eq!(session.get(&app, "/console/live").await.0, 200);
    assert_eq!(
        last_seen(&app).await,
        five_minutes_ago,
        "a refresh keeps no session alive"
    );
    assert_eq!(session.get(&app, "/console/kyc").await.0, 200);
    assert!(last_seen(&app).await > five_minutes_ago, "a page view is activity");

    // A session unused past the idle timeout has ended.
    let idle = app.state.clone();
    let mut conn = idle.db.acquire().await.unwrap();
    let (conn_ref, obs) = amani::store::DbHandle::parts(&mut conn);
    obs.run(
        "test.idle",
        sqlx::query("update console_sessions set last_seen_at = '2000-01-01T00:00:00.000000Z'").execute(conn_ref),
    )
    .await
    .unwrap();
    drop(conn);
    let (status, _) = session.get(&app, "/console").await;
    assert_eq!(status, 303, "idle sessions end");

    // Logging out ends the session at once.
    let session = log_in(&app, &admin).await;
    let csrf = session.csrf(&app).await;
    let (status, location) = session.post(&app, "/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (303, "/console/login"));
    let (status, _) = session.get(&app, "/console").await;
    assert_eq!(status, 303, "the old cookie opens nothing");

    // Behind TLS the cookie is Secure.
    let tls = TestApp::spawn_ready(&db.url, &[("FORCE_HTTPS", "true")]).await;
    let response = console_login(&tls, &admin.email, PASSWORD).await;
    assert_eq!(response.status(), 303);
    assert!(
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .all(|c| c.to_str().unwrap().contains("; Secure"))
    );
}

async fn dispute_milestone(app: &TestApp, admin: &TestUser, amount: i64) -> (TestUser, TestUser, String) {
    let buyer = verified_user(app, "client", admin).await;
    let seller = verified_user(app, "freelancer", admin).await;
    crate::escrow::deposit(app, &buyer, 1_000_000).await;
    let (project, milestones) = crate::escrow::active_project(app, &buyer, &seller, &[amount]).await;
    let (status, held) = money_post(app, &buyer, "/api/v1/escrow/hold", json!({"project_id": project})).await;
    assert_eq!(status, 201, "{held}");
    let milestone = milestones[0].clone();
    let (status, body) = crate::escrow::post(
        app,
        &seller,
        &format!("/api/v1/milestones/{milestone}/submit"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = crate::escrow::post(
        app,
        &buyer,
        &format!("/api/v1/milestones/{milestone}/dispute"),
        json!({"reason": "Only one page of three was delivered", "evidence": "See the brief."}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (buyer, seller, milestone)
}

async fn audit_actions(app: &TestApp, admin: &TestUser, target: &str) -> Vec<String> {
    crate::accounts::audit_of(app, admin, target)
        .await
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn an_admin_works_the_kyc_queue_and_a_split_dispute_in_the_console(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn_ready(&db.url, &[("SCHEDULER_ENABLED", "false")]).await;
    let admin = app.admin().await;
    let session = log_in(&app, &admin).await;

    // KYC: the queue lists the submission; its page shows the document
    // inline; the document is served decrypted, uncached, and audited.
    let applicant = app.user("freelancer").await;
    let (status, submitted) = json(
        crate::kyc::submit(
            &app,
            &applicant,
            crate::kyc::form("kyc", "AB12345678901", Some((crate::kyc::PNG, "id.png", "image/png"))),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{submitted}");
    let submission = submitted["id"].as_str().unwrap();
    let (status, queue) = session.get(&app, "/console/kyc").await;
    assert_eq!(status, 200);
    assert!(queue.contains(&format!("/console/kyc/{submission}")), "{queue}");
    let before = crate::speed::statements_by_operation(&app);
    let (status, page) = session.get(&app, &format!("/console/kyc/{submission}")).await;
    assert_eq!(status, 200);
    // The page names the document's type; it does not read the document.
    let after = crate::speed::statements_by_operation(&app);
    let ran = |op: &str| after.get(op).copied().unwrap_or(0.0) - before.get(op).copied().unwrap_or(0.0);
    assert_eq!(
        (ran("kyc_documents.content_type"), ran("kyc_documents.find")),
        (1.0, 0.0)
    );
    assert!(
        page.contains(&format!(
            "<img class=\"document\" src=\"/console/kyc/{submission}/document\""
        )),
        "{page}"
    );
    assert!(
        page.contains("…8901") && !page.contains("12345678901"),
        "only the last four of the ID number"
    );
    let document = app
        .client
        .get(app.url(&format!("/console/kyc/{submission}/document")))
        .header("cookie", &session.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(document.status(), 200);
    assert_eq!(document.headers()["content-type"], "image/png");
    assert_eq!(document.headers()["cache-control"], "no-store");
    assert_eq!(
        document.bytes().await.unwrap().as_ref(),
        crate::kyc::PNG,
        "decrypted for the viewer"
    );
    let csrf = csrf_of(&page);
    let (status, location) = session
        .post(&app, &format!("/console/kyc/{submission}/approve"), &[("csrf", &csrf)])
        .await;
    assert_eq!((status, location.as_str()), (303, "/console/kyc?notice=approved"));
    let actions = audit_actions(&app, &admin, submission).await;
    assert_eq!(
        actions,
        ["kyc.approved", "kyc.document_viewed", "kyc.submitted"],
        "newest first"
    );
    let (status, again) = session
        .post(&app, &format!("/console/kyc/{submission}/approve"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 409, "decided already: {again}");

    // A dispute over a 30,000 milestone, split 12,000 to the seller.
    let (buyer, seller, milestone) = dispute_milestone(&app, &admin, 30_000).await;
    let (buyer_before, seller_before) = (available(&app, &buyer).await, available(&app, &seller).await);
    let (status, list) = session.get(&app, "/console/disputes").await;
    assert_eq!(status, 200);
    assert!(
        list.contains(&format!("/console/disputes/milestone/{milestone}")),
        "{list}"
    );
    let (status, page) = session
        .get(&app, &format!("/console/disputes/milestone/{milestone}"))
        .await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Only one page of three was delivered"),
        "the buyer's statement"
    );
    let preview = format!("/console/disputes/milestone/{milestone}/preview");
    let split = [
        ("csrf", csrf.as_str()),
        ("outcome", "split"),
        ("seller_amount", "12000"),
        ("notes", ""),
    ];
    let (status, effect) = session.post(&app, &preview, &split).await;
    assert_eq!(status, 200, "{effect}");
    assert!(effect.contains("id=\"ledger-effect\""), "{effect}");
    assert!(
        effect.contains("+12,000 NGN") && effect.contains("+18,000 NGN"),
        "{effect}"
    );
    // The preview moved nothing.
    assert_eq!(available(&app, &seller).await, seller_before);
    // A split beyond what is held is refused with why.
    let too_much = [
        ("csrf", csrf.as_str()),
        ("outcome", "split"),
        ("seller_amount", "30001"),
    ];
    let (status, body) = session.post(&app, &preview, &too_much).await;
    assert_eq!(status, 422);
    assert!(body.contains("from 0 to 30000"), "{body}");
    // Confirming with a stale amount held is refused.
    let resolve = format!("/console/disputes/milestone/{milestone}/resolve");
    let stale = [
        ("csrf", csrf.as_str()),
        ("outcome", "split"),
        ("seller_amount", "12000"),
        ("held", "29999"),
    ];
    let (status, _) = session.post(&app, &resolve, &stale).await;
    assert_eq!(status, 409);
    let confirm = [
        ("csrf", csrf.as_str()),
        ("outcome", "split"),
        ("seller_amount", "12000"),
        ("held", "30000"),
    ];
    let (status, location) = session.post(&app, &resolve, &confirm).await;
    assert_eq!(status, 303, "{location}");
    assert_eq!(available(&app, &seller).await, seller_before + 12_000);
    assert_eq!(available(&app, &buyer).await, buyer_before + 18_000);
    let (_, settled) = session.get(&app, &location).await;
    assert!(
        settled.contains("The dispute is resolved") && settled.contains("is settled"),
        "{settled}"
    );
    assert_eq!(audit_actions(&app, &admin, &milestone).await[0], "dispute.resolved");
    assert_eq!(assert_books_balance(&app).await, 0);

    // The user's page shows the balance the resolution left.
    let (status, user_page) = session.get(&app, &format!("/console/users/{}", seller.id)).await;
    assert_eq!(status, 200);
    assert!(user_page.contains(&ngn(seller_before + 12_000)), "{user_page}");
}

/// An NGN amount as the console writes it, thousands grouped (written here
/// independently of the console's own formatter).
fn ngn(minor: i64) -> String {
    let digits = minor.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out} NGN")
}

async fn a_reset_link_sets_a_password_once_from_the_console_or_the_api(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn_ready(&db.url, &[("RATE_LIMIT_ENABLED", "false")]).await;
    let admin = app.admin().await;
    let user = app.user("client").await;
    let session = log_in(&app, &admin).await;

    // From the console: the link is shown once, on the admin's page.
    let csrf = session.csrf(&app).await;
    let (status, page) = session
        .post(
            &app,
            &format!("/console/users/{}/password-reset", user.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let start = page.find("/console/password-reset?token=").expect("the link") + 30;
    let token = page[start..start + 43].to_owned();
    // The owner's page: a form, no session needed.
    let response = app.get(&format!("/console/password-reset?token={token}")).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains(&user.email));
    // A password that breaks a rule: refused with why; the link still works.
    let weak = app
        .client
        .post(app.url("/console/password-reset"))
        .form(&[("token", token.as_str()), ("new_password", "short")])
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status(), 422);
    let set = app
        .client
        .post(app.url("/console/password-reset"))
        .form(&[("token", token.as_str()), ("new_password", "a-brand-new-passphrase")])
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    assert!(set.text().await.unwrap().contains("Password set"));
    assert_eq!(app.login(&user.email, "a-brand-new-passphrase").await.status(), 200);
    assert_eq!(app.login(&user.email, PASSWORD).await.status(), 401);
    let old_token = app
        .authed(Method::GET, "/api/v1/auth/me", &user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(old_token.status(), 401, "tokens from before the reset are void");
    // Once only.
    let again = app.get(&format!("/console/password-reset?token={token}")).await;
    assert_eq!(again.status(), 400);

    // From the API: a second link voids the first; each works once.
    let issue = || async {
        json(
            app.authed(
                Method::POST,
                &format!("/api/v1/admin/users/{}/password-reset", user.id),
                &admin.token,
            )
            .send()
            .await
            .unwrap(),
        )
        .await
    };
    let (status, first) = issue().await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(
        first["reset_path"],
        format!("/console/password-reset?token={}", first["token"].as_str().unwrap())
    );
    let (_, second) = issue().await;
    let reset = |token: Value, password: &'static str| {
        let app = &app;
        async move {
            app.post_json(
                "/api/v1/auth/password-reset",
                &json!({"token": token, "new_password": password}),
            )
            .await
            .status()
        }
    };
    assert_eq!(
        reset(first["token"].clone(), "another-good-passphrase").await,
        400,
        "voided by the second"
    );
    assert_eq!(reset(json!("made-up"), "another-good-passphrase").await, 400);
    assert_eq!(reset(second["token"].clone(), "another-good-passphrase").await, 204);
    assert_eq!(
        reset(second["token"].clone(), "yet-another-passphrase").await,
        400,
        "spent"
    );
    assert_eq!(app.login(&user.email, "another-good-passphrase").await.status(), 200);

    // Admins do not reset their own; non-admins issue nothing.
    let own = app
        .authed(
            Method::POST,
            &format!("/api/v1/admin/users/{}/password-reset", admin.id),
            &admin.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 409);
    let stranger = app.user("freelancer").await;
    let forbidden = app
        .authed(
            Method::POST,
            &format!("/api/v1/admin/users/{}/password-reset", user.id),
            &stranger.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);

    let actions = audit_actions(&app, &admin, &user.id).await;
    assert_eq!(
        actions.iter().filter(|a| a.starts_with("user.password_reset")).count(),
        5,
        "three issued, two used: {actions:?}"
    );
    // Only digests are stored.
    let mut conn = app.state.db.acquire().await.unwrap();
    let (conn_ref, obs) = amani::store::DbHandle::parts(&mut conn);
    let stored: Vec<(String,)> = obs
        .run(
            "test.resets",
            sqlx::query_as("select token_hash from password_resets").fetch_all(conn_ref),
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().all(|(hash,)| hash.len() == 64 && *hash != token));
}

async fn the_admin_api_searches_accounts(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let users = [
        app.user("client").await,
        app.user("client").await,
        app.user("freelancer").await,
    ];
    let search = |q: String| {
        let app = &app;
        let token = admin.token.clone();
        async move {
            json(
                app.authed(Method::GET, &format!("/api/v1/admin/users?{q}"), &token)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    // Part of an email, any case; pages by cursor in email order.
    let (status, page) = search("q=CLIENT-&page_size=1".into()).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["has_more"], true);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, next) = search(format!("q=client-&page_size=5&after={cursor}")).await;
    let mut clients: Vec<&str> = users[..2].iter().map(|u| u.email.as_str()).collect();
    clients.sort();
    assert_eq!(page["items"][0]["email"], clients[0]);
    assert_eq!(next["items"].as_array().unwrap().len(), 1);
    assert_eq!(next["items"][0]["email"], clients[1]);
    assert_eq!(next["has_more"], false);
    // By id, exactly.
    let (_, by_id) = search(format!("q={}", users[2].id)).await;
    assert_eq!(by_id["items"][0]["email"], users[2].email);
    // LIKE's wildcards match only themselves.
    let (_, wildcard) = search("q=%25".into()).await;
    assert_eq!(wildcard["items"], json!([]));
    let (status, _) = search("q=%20".into()).await;
    assert_eq!(status, 422, "an empty search");
    let forbidden = app
        .authed(Method::GET, "/api/v1/admin/users?q=a", &users[0].token)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);

    // The console's search finds the same.
    let session = log_in(&app, &admin).await;
    let (status, page) = session.get(&app, &format!("/console/users?q={}", users[2].email)).await;
    assert_eq!(status, 200);
    assert!(page.contains(&format!("/console/users/{}", users[2].id)), "{page}");
    let (status, page) = session
        .get(&app, &format!("/console/audit?target_id={}", users[2].id))
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("user.signup"), "{page}");
    let (status, page) = session.get(&app, "/console/audit?from=yesterday").await;
    assert_eq!(status, 422, "{page}");
}

async fn the_operator_view_charts_the_traffic_it_serves(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn_ready(&db.url, &[("CONSOLE_CHART_SECONDS", "1")]).await;
    let admin = app.admin().await;
    let session = log_in(&app, &admin).await;
    // Traffic on one route, then wait for two samples that include it.
    for _ in 0..20 {
        assert_eq!(app.get("/api/v1/ping").await.status(), 200);
    }
    let live = crate::server::eventually(
        std::time::Duration::from_secs(15),
        "the ping route charted",
        async || {
            let live = session.get(&app, "/console/live").await.1;
            live.contains("<code>GET /api/v1/ping</code>").then_some(live)
        },
    )
    .await;
    assert!(live.contains("id=\"route-charts\""), "{live}");
    // The row says how many requests its charts are drawn from.
    let row = live.split("<tr>").find(|row| row.contains("GET /api/v1/ping")).unwrap();
    let served: f64 = row
        .split("class=\"muted\">")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1.0..=20.0).contains(&served), "{row}");
    assert!(live.contains("<polyline"), "a line is drawn: {live}");
    assert!(live.contains("id=\"escrow-held\""), "{live}");
    assert!(live.contains("id=\"health-status\">healthy<"), "{live}");
    // The same numbers /metrics serves: escrow held per currency is there.
    assert!(live.contains("NGN"), "{live}");
}

async fn a_session_that_is_not_an_admins_gets_403_on_every_console_route(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let client = app.user("client").await;
    // Login refuses non-admins, so such a session can only come from the
    // store (a role change, a bug): it must still open nothing.
    let token = amani::auth::secret::new_token().unwrap();
    let mut conn = app.state.db.acquire().await.unwrap();
    let user = amani::store::users::find_by_id(&mut conn, &client.id)
        .await
        .unwrap()
        .unwrap();
    amani::store::console::open_session(
        &mut conn,
        amani::store::console::NewSession {
            token_hash: &amani::auth::secret::digest(&token),
            user: &user,
            csrf_token: "csrf-token-of-the-session",
            expires_at: "2999-01-01T00:00:00.000000Z",
        },
    )
    .await
    .unwrap();
    drop(conn);
    let session = Session {
        cookie: format!("amani_console={token}"),
    };
    let id = client.id.as_str();
    for path in [
        "/console".to_owned(),
        "/console/live".to_owned(),
        "/console/kyc".to_owned(),
        format!("/console/kyc/{id}"),
        format!("/console/kyc/{id}/document"),
        "/console/disputes".to_owned(),
        format!("/console/disputes/milestone/{id}"),
        format!("/console/disputes/project/{id}"),
        format!("/console/disputes/milestone/{id}/files/{id}"),
        "/console/users?q=a".to_owned(),
        format!("/console/users/{id}"),
        "/console/audit".to_owned(),
    ] {
        let (status, body) = session.get(&app, &path).await;
        assert_eq!(status, 403, "GET {path}: {body}");
        assert!(body.contains("The console is for admins"), "{path}: {body}");
    }
    for path in [
        "/console/logout".to_owned(),
        format!("/console/kyc/{id}/approve"),
        format!("/console/kyc/{id}/reject"),
        format!("/console/disputes/milestone/{id}/preview"),
        format!("/console/disputes/project/{id}/resolve"),
        format!("/console/users/{id}/deactivate"),
        format!("/console/users/{id}/reactivate"),
        format!("/console/users/{id}/password-reset"),
    ] {
        let (status, body) = session
            .post(&app, &path, &[("csrf", "csrf-token-of-the-session")])
            .await;
        assert_eq!(status, 403, "POST {path}: {body}");
    }
}

async fn a_disputed_project_is_released_to_the_seller_from_the_console(engine: Engine) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn_ready(&db.url, &[("SCHEDULER_ENABLED", "false")]).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    crate::escrow::deposit(&app, &buyer, 100_000).await;
    let (project, _) = crate::escrow::active_project(&app, &buyer, &seller, &[20_000, 5_000]).await;
    let (status, held) = money_post(&app, &buyer, "/api/v1/escrow/hold", json!({"project_id": project})).await;
    assert_eq!(status, 201, "{held}");
    let (status, body) = crate::escrow::post(
        &app,
        &seller,
        &format!("/api/v1/projects/{project}/dispute"),
        json!({"reason": "The client stopped answering"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seller_before = available(&app, &seller).await;

    let session = log_in(&app, &admin).await;
    let (_, list) = session.get(&app, "/console/disputes").await;
    assert!(list.contains(&format!("/console/disputes/project/{project}")), "{list}");
    let (status, page) = session.get(&app, &format!("/console/disputes/project/{project}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("The client stopped answering") && page.contains("25,000 NGN"),
        "{page}"
    );
    let csrf = csrf_of(&page);
    let release = [("csrf", csrf.as_str()), ("outcome", "release"), ("seller_amount", "")];
    let (status, effect) = session
        .post(&app, &format!("/console/disputes/project/{project}/preview"), &release)
        .await;
    assert_eq!(status, 200, "{effect}");
    assert!(effect.contains("+25,000 NGN") && effect.contains("+0 NGN"), "{effect}");
    let confirm = [("csrf", csrf.as_str()), ("outcome", "release"), ("held", "25000")];
    let (status, location) = session
        .post(&app, &format!("/console/disputes/project/{project}/resolve"), &confirm)
        .await;
    assert_eq!(status, 303, "{location}");
    assert_eq!(available(&app, &seller).await, seller_before + 25_000);
    let (status, project_view) = json(
        app.authed(Method::GET, &format!("/api/v1/projects/{project}"), &buyer.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(project_view["status"], "completed");
    assert_eq!(assert_books_balance(&app).await, 0);
    // Settled: nothing left to resolve.
    let (status, _) = session
        .post(&app, &format!("/console/disputes/project/{project}/preview"), &release)
        .await;
    assert_eq!(status, 409);
}
