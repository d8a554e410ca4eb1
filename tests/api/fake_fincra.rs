//! A local fake of FinCra's documented API (`shared/gateways/FINCRA.md`):
//! checkout, verify checkout, payout, fetch payout, resolve account. It
//! keeps the operations it received, records every request (method, path,
//! headers, body) and has knobs to be slow, to time out after executing, or
//! to send its webhook before answering — so tests assert on what really
//! went over the wire.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
}

/// Where the fake sends its webhook before it answers a payout.
#[derive(Debug, Clone)]
pub struct EarlyWebhook {
    pub url: String,
    pub secret: String,
}

#[derive(Default)]
struct Book {
    requests: Vec<Recorded>,
    checkouts: HashMap<String, Value>,
    payouts: HashMap<String, Value>,
    /// account number → holder name; absent accounts do not resolve.
    accounts: HashMap<String, String>,
    /// Sleep this long after recording a payout, before answering.
    payout_delay: Duration,
    /// Answer a payout with this HTTP error after executing it.
    payout_error_after_execute: Option<u16>,
    early_webhook: Option<EarlyWebhook>,
}

#[derive(Clone)]
pub struct FakeFincra {
    pub addr: SocketAddr,
    book: Arc<Mutex<Book>>,
}

type Shared = Arc<Mutex<Book>>;

fn record(book: &Shared, method: &str, path: &str, headers: &HeaderMap, body: &Value) {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    book.lock().unwrap().requests.push(Recorded {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body: body.clone(),
    });
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"success": false, "error": format!("{what} not found"), "errorType": "RESOURCE_NOT_FOUND"})),
    )
        .into_response()
}

async fn checkout(State(book): State<Shared>, headers: HeaderMap, axum::Json(body): axum::Json<Value>) -> Response {
    record(&book, "POST", "/checkout/payments", &headers, &body);
    let reference = body["reference"].as_str().unwrap_or_default().to_owned();
    let data = json!({
        "reference": format!("fcr-p-{reference}"), "merchantReference": reference, "status": "initiated",
        "amount": body["amount"], "currency": body["currency"], "amountExpected": body["amount"],
        "amountReceived": 0, "varianceType": null,
    });
    book.lock().unwrap().checkouts.insert(reference.clone(), data);
    axum::Json(json!({"status": true, "message": "Hosted link generated",
        "data": {"link": format!("https://checkout.fincra.test/pay/{reference}"), "reference": reference, "payCode": format!("fcr-p-{reference}")}}))
    .into_response()
}

async fn verify_checkout(State(book): State<Shared>, headers: HeaderMap, Path(reference): Path<String>) -> Response {
    let path = format!("/checkout/payments/merchant-reference/{reference}");
    record(&book, "GET", &path, &headers, &Value::Null);
    let data = book.lock().unwrap().checkouts.get(&reference).cloned();
    match data {
        Some(data) => {
            axum::Json(json!({"status": true, "message": "Payment details fetched", "data": data})).into_response()
        }
        None => not_found("Payment"),
    }
}

async fn payout(State(book): State<Shared>, headers: HeaderMap, axum::Json(body): axum::Json<Value>) -> Response {
    record(&book, "POST", "/disbursements/payouts", &headers, &body);
    let reference = body["customerReference"].as_str().unwrap_or_default().to_owned();
    let (delay, error, early) = {
        let mut book = book.lock().unwrap();
        if book.payouts.contains_key(&reference) {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(
                    json!({"success": false, "error": "Cannot continue, Duplicate Customer Reference Passed",
                    "errorType": "DUPLICATE_CUSTOMER_REFERENCE"}),
                ),
            )
                .into_response();
        }
        let data = json!({"id": book.payouts.len() + 1, "reference": format!("fx-{reference}"), "customerReference": reference,
            "status": "processing", "amountReceived": body["amount"], "sourceCurrency": body["sourceCurrency"]});
        book.payouts.insert(reference.clone(), data);
        (
            book.payout_delay,
            book.payout_error_after_execute,
            book.early_webhook.clone(),
        )
    };
    if let Some(hook) = early {
        // FinCra finishes the payout and tells us before answering the call.
        let event = {
            let mut book = book.lock().unwrap();
            let data = book.payouts.get_mut(&reference).unwrap();
            data["status"] = json!("successful");
            json!({"event": "payout.successful", "data": data.clone()})
        };
        let raw = serde_json::to_vec(&event).unwrap();
        let status = reqwest::Client::new()
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("signature", amani::gateway::webhook::sign(hook.secret.as_bytes(), &raw))
            .body(raw)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        assert_eq!(status, 200, "the early webhook was not accepted");
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(status) = error {
        return (
            StatusCode::from_u16(status).unwrap(),
            axum::Json(
                json!({"success": false, "error": "Internal server error", "errorType": "INTERNAL_SERVER_ERROR"}),
            ),
        )
            .into_response();
    }
    let data = book.lock().unwrap().payouts[&reference].clone();
    axum::Json(json!({"success": true, "message": "Payout processed successfully", "data": data})).into_response()
}

async fn fetch_payout(State(book): State<Shared>, headers: HeaderMap, Path(reference): Path<String>) -> Response {
    let path = format!("/disbursements/payouts/customer-reference/{reference}");
    record(&book, "GET", &path, &headers, &Value::Null);
    let data = book.lock().unwrap().payouts.get(&reference).cloned();
    match data {
        Some(data) => {
            axum::Json(json!({"success": true, "message": "Payout fetched successfully", "data": data})).into_response()
        }
        None => not_found("Payout"),
    }
}

async fn resolve(State(book): State<Shared>, headers: HeaderMap, axum::Json(body): axum::Json<Value>) -> Response {
    record(&book, "POST", "/core/accounts/resolve", &headers, &body);
    let number = body["accountNumber"].as_str().unwrap_or_default().to_owned();
    let name = book.lock().unwrap().accounts.get(&number).cloned();
    match name {
        Some(name) => axum::Json(json!({"success": true, "message": "Account resolve successful",
            "data": {"accountName": name, "accountNumber": number, "bankCode": body["bankCode"]}}))
        .into_response(),
        None => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"success": false, "error": "Account could not be resolved", "errorType": "ACCOUNT_RESOLVE_FAILED"})),
        )
            .into_response(),
    }
}

impl FakeFincra {
    pub async fn start() -> FakeFincra {
        let book: Shared = Arc::default();
        let app = Router::new()
            .route("/checkout/payments", post(checkout))
            .route(
                "/checkout/payments/merchant-reference/{reference}",
                get(verify_checkout),
            )
            .route("/disbursements/payouts", post(payout))
            .route(
                "/disbursements/payouts/customer-reference/{reference}",
                get(fetch_payout),
            )
            .route("/core/accounts/resolve", post(resolve))
            .with_state(Arc::clone(&book));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeFincra { addr, book }
    }

    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.book.lock().unwrap().requests.clone()
    }

    pub fn requests_to(&self, method: &str, path_prefix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .collect()
    }

    pub fn add_account(&self, number: &str, name: &str) {
        self.book.lock().unwrap().accounts.insert(number.into(), name.into());
    }

    pub fn delay_payouts(&self, delay: Duration) {
        self.book.lock().unwrap().payout_delay = delay;
    }

    pub fn fail_payouts_after_executing(&self, status: Option<u16>) {
        self.book.lock().unwrap().payout_error_after_execute = status;
    }

    pub fn send_webhook_before_answering(&self, hook: Option<EarlyWebhook>) {
        self.book.lock().unwrap().early_webhook = hook;
    }

    /// The payer pays a checkout: `received` and `variance` as FinCra reports them.
    pub fn pay_checkout(&self, reference: &str, received: Value, variance: Option<&str>) -> Value {
        let mut book = self.book.lock().unwrap();
        let data = book.checkouts.get_mut(reference).expect("a checkout we created");
        data["status"] = json!("success");
        data["amountReceived"] = received;
        data["varianceType"] = json!(variance);
        data.clone()
    }

    /// FinCra finishes a payout: `successful` or `failed`.
    pub fn settle_payout(&self, reference: &str, status: &str) -> Value {
        let mut book = self.book.lock().unwrap();
        let data = book.payouts.get_mut(reference).expect("a payout we received");
        data["status"] = json!(status);
        if status == "failed" {
            data["reason"] = json!("beneficiary account closed");
        }
        data.clone()
    }
}
