//! Escrow load driver: `cargo run --release --example escrow_load -- URL
//! ADMIN_EMAIL ADMIN_PASSWORD CLIENTS SECONDS`. Each client owns a project
//! with many milestones and runs hold → submit → approve → release cycles
//! until the time is up (each client gets enough projects to stay busy for
//! the whole window, assuming at most [`MAX_CYCLES_PER_SECOND`] in all; a
//! client that runs out anyway says so, since the window then ended early
//! for it). Prints cycles/s, transfers/s (3 a cycle: the hold,
//! its fee, the release), request latency p50/p99, failures, and database
//! statements/s (from `db_query_duration_seconds_count` before and after).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a load driver: a failed setup is a crash

use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PASSWORD: &str = "bench-password-123";
const MILESTONES: usize = 100;
/// Above anything measured on the development machine (about 250).
const MAX_CYCLES_PER_SECOND: u64 = 600;

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        key: bool,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{}", self.base, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if key {
            request = request.header("idempotency-key", uuid::Uuid::new_v4().to_string());
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    async fn user(&self, role: &str) -> (String, String) {
        let email = format!("{role}-{}@bench.example", uuid::Uuid::new_v4().simple());
        let (status, user) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/signup",
                None,
                Some(json!({"email": email, "password": PASSWORD, "full_name": "Bench", "role": role})),
                false,
            )
            .await;
        assert_eq!(status, 201, "{user}");
        (
            user["id"].as_str().unwrap_or_default().to_owned(),
            self.login(&email, PASSWORD).await,
        )
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
                false,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap_or_default().to_owned()
    }

    async fn verify(&self, token: &str, admin: &str) {
        let form = reqwest::multipart::Form::new()
            .text("type", "kyc")
            .text("nin_or_passport", "A1234567890");
        let response = self
            .client
            .post(format!("{}/api/v1/kyc/submit", self.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("kyc submit");
        let submission: Value = response.json().await.expect("kyc body");
        let id = submission["id"].as_str().unwrap_or_default();
        let (status, _) = self
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/admin/kyc/{id}/approve"),
                Some(admin),
                None,
                false,
            )
            .await;
        assert_eq!(status, 200);
    }

    /// An accepted project of [`MILESTONES`] milestones between `buyer` and
    /// the seller: (project id, milestone id) for each milestone.
    async fn active_project(&self, buyer: &str, seller: &str, seller_id: &str) -> Vec<(String, String)> {
        let milestones: Vec<Value> = (0..MILESTONES)
            .map(|i| json!({"title": format!("m{i}"), "amount": 10_000}))
            .collect();
        let (status, project) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/projects",
                Some(buyer),
                Some(json!({"title": "bench", "seller_id": seller_id, "currency": "NGN", "milestones": milestones})),
                false,
            )
            .await;
        assert_eq!(status, 201, "{project}");
        let id = project["id"].as_str().unwrap_or_default().to_owned();
        for (step, token) in [("send", buyer), ("accept", seller)] {
            let path = format!("/api/v1/projects/{id}/{step}");
            let (status, body) = self.call(reqwest::Method::POST, &path, Some(token), None, false).await;
            assert_eq!(status, 200, "{step}: {body}");
        }
        project["milestones"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|m| Some((id.clone(), m["id"].as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// (statements run, committed transactions' total seconds, their
    /// number), from the service's own metrics.
    async fn statements(&self) -> (f64, f64, f64) {
        let text = match self.client.get(format!("{}/metrics", self.base)).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let sum = |prefix: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        (
            sum("db_query_duration_seconds_count"),
            sum("db_transaction_duration_seconds_sum{outcome=\"committed\"}"),
            sum("db_transaction_duration_seconds_count{outcome=\"committed\"}"),
        )
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (base, admin_email, admin_password) = (args[1].clone(), args[2].clone(), args[3].clone());
    let clients: usize = args[4].parse().expect("CLIENTS");
    let seconds: u64 = args[5].parse().expect("SECONDS");
    let api = std::sync::Arc::new(Api {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .expect("client"),
        base,
    });
    let admin = api.login(&admin_email, &admin_password).await;

    // One buyer/seller pair per client, and enough projects of many
    // milestones for the window.
    let cycles_per_client = (MAX_CYCLES_PER_SECOND * seconds).div_ceil(clients as u64);
    let projects_per_client = usize::try_from(cycles_per_client)
        .unwrap_or(usize::MAX)
        .div_ceil(MILESTONES)
        .max(1);
    let mut workers = Vec::new();
    for _ in 0..clients {
        let (_, buyer) = api.user("client").await;
        let (seller_id, seller) = api.user("freelancer").await;
        api.verify(&buyer, &admin).await;
        let (status, _) = api
            .call(
                reqwest::Method::POST,
                "/api/v1/wallet/deposit",
                Some(&buyer),
                Some(json!({"amount": 1_000_000_000, "currency": "NGN"})),
                true,
            )
            .await;
        assert_eq!(status, 201);
        let mut work = Vec::new();
        for _ in 0..projects_per_client {
            work.extend(api.active_project(&buyer, &seller, &seller_id).await);
        }
        workers.push((buyer, seller, work));
    }

    let statements_before = api.statements().await;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|(buyer, seller, work)| {
            let api = std::sync::Arc::clone(&api);
            tokio::spawn(async move {
                let (mut cycles, mut failures, mut latencies) = (0u64, 0u64, Vec::new());
                let mut work = work.into_iter();
                while Instant::now() < deadline {
                    let Some((project, milestone)) = work.next() else {
                        eprintln!(
                            "a client ran out of milestones before the window ended: raise MAX_CYCLES_PER_SECOND"
                        );
                        break;
                    };
                    let steps = [
                        (
                            "/api/v1/escrow/hold".to_owned(),
                            buyer.as_str(),
                            json!({"project_id": project, "milestone_id": milestone}),
                            true,
                        ),
                        (
                            format!("/api/v1/milestones/{milestone}/submit"),
                            seller.as_str(),
                            json!({}),
                            false,
                        ),
                        (
                            format!("/api/v1/milestones/{milestone}/approve"),
                            buyer.as_str(),
                            json!({"approve": true}),
                            false,
                        ),
                        (
                            "/api/v1/escrow/release".to_owned(),
                            buyer.as_str(),
                            json!({"milestone_id": milestone}),
                            true,
                        ),
                    ];
                    let mut ok = true;
                    for (path, token, body, key) in steps {
                        let t = Instant::now();
                        let (status, _) = api
                            .call(reqwest::Method::POST, &path, Some(token), Some(body), key)
                            .await;
                        latencies.push(t.elapsed());
                        if !(200..300).contains(&status) {
                            ok = false;
                            break;
                        }
                    }
                    if ok { cycles += 1 } else { failures += 1 }
                }
                (cycles, failures, latencies)
            })
        })
        .collect();
    let (mut cycles, mut failures, mut latencies) = (0, 0, Vec::new());
    for task in tasks {
        if let Ok((c, f, l)) = task.await {
            cycles += c;
            failures += f;
            latencies.extend(l);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = api.statements().await;
    let statements = after.0 - statements_before.0;
    // Mean time from begin to commit (on SQLite, the writer's lock held).
    let held_ms = (after.1 - statements_before.1) / (after.2 - statements_before.2).max(1.0) * 1000.0;
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "clients {clients:3}: {:8.1} cycles/s {:8.1} transfers/s  request p50 {:6.2} ms p99 {:6.2} ms  failures {failures}  db statements/s {:8.0}  transaction held {:6.3} ms",
        cycles as f64 / elapsed,
        3.0 * cycles as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        statements / elapsed,
        held_ms,
    );
}
