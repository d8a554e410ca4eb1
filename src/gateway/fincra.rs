//! FinCra, as its public documentation describes it (the fact sheet in
//! `shared/gateways/FINCRA.md`):
//!
//! | call | request | headers |
//! |---|---|---|
//! | checkout | `POST /checkout/payments` | `api-key`, `x-pub-key` |
//! | verify checkout | `GET /checkout/payments/merchant-reference/{ref}` | `api-key`, `x-business-id` |
//! | payout | `POST /disbursements/payouts` (`business` in the body) | `api-key` |
//! | fetch payout | `GET /disbursements/payouts/customer-reference/{ref}` | `api-key` |
//! | resolve account | `POST /core/accounts/resolve` | `api-key` |
//!
//! Every request also carries `X-Request-ID` and the W3C `traceparent`.
//! Amounts are major units on the wire and minor units everywhere else,
//! converted exactly (no floats): [`super::major_units`], [`super::json_minor_units`].
//!
//! Retries: only reads (`GET`) are retried here, on timeouts, connection
//! errors, 429 and 5xx. A `POST` that gets no definite answer is *not*
//! sent again: the provider may have acted, so the record stays pending and
//! reconciliation asks (FinCra: "a timeout or 5xx does not mean the payout
//! failed; re-query by customerReference before retrying").

use std::time::Duration;

use rand::Rng;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{
    AccountQuery, BoxFuture, CheckoutRequest, CheckoutStarted, GatewayError, PaymentGateway, PayoutRequest, Settlement,
    json_minor_units, major_units,
};
use crate::config::PaymentConfig;
use crate::domain::money::Currency;
use crate::domain::payout::DestinationKind;

/// Attempts for a read (verify, fetch).
pub const READ_ATTEMPTS: u32 = 3;
const BASE_DELAY: Duration = Duration::from_millis(200);

/// Error types the fact sheet classes as "ambiguous: keep re-querying".
const AMBIGUOUS_ERRORS: [&str; 3] = ["RESOURCE_NOT_FOUND", "SERVICE_UNAVAILABLE", "INTERNAL_SERVER_ERROR"];

pub struct Fincra {
    client: reqwest::Client,
    base_url: String,
    api_key: SecretString,
    public_key: Option<SecretString>,
    business_id: Option<String>,
}

/// One HTTP answer, read whole.
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    /// FinCra's application error envelope: `{"success":false,"error":…,"errorType":…}`
    /// (or the gateway's `{"message":…}`).
    fn error_type(&self) -> Option<&str> {
        self.body["errorType"].as_str()
    }

    fn message(&self) -> String {
        ["error", "message"]
            .iter()
            .find_map(|field| self.body[*field].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {}", self.status.as_u16()))
    }

    fn is_not_found(&self) -> bool {
        self.status == StatusCode::NOT_FOUND || self.error_type() == Some("RESOURCE_NOT_FOUND")
    }

    /// A 4xx that is a definite refusal (not 404/408/429, not an
    /// ambiguous error type).
    fn is_refusal(&self) -> bool {
        self.status.is_client_error()
            && !matches!(
                self.status,
                StatusCode::NOT_FOUND | StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS
            )
            && !self.error_type().is_some_and(|t| AMBIGUOUS_ERRORS.contains(&t))
    }
}

impl Fincra {
    pub fn new(config: &PaymentConfig) -> Result<Fincra, String> {
        let api_key = config.fincra_api_key.clone().ok_or("FINCRA_API_KEY is required")?;
        let client = reqwest::Client::builder()
            .timeout(config.fincra_timeout)
            .connect_timeout(config.fincra_timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Fincra {
            client,
            base_url: config.fincra_base_url.clone(),
            api_key,
            public_key: config.fincra_public_key.clone(),
            business_id: config.fincra_business_id.clone(),
        })
    }

    fn business(&self) -> &str {
        self.business_id.as_deref().unwrap_or("")
    }

    /// Sends one request. `Err` only when no HTTP answer came back.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let mut headers = http::HeaderMap::new();
        crate::telemetry::traces::inject_trace(&mut headers);
        if let Some(id) = crate::telemetry::request_id::current()
            && let Ok(value) = http::HeaderValue::from_str(id.as_str())
        {
            headers.insert("x-request-id", value);
        }
        let mut request = self
            .client
            .request(method, format!("{}{}", self.base_url, path))
            .headers(headers)
            .header("api-key", self.api_key.expose_secret())
            .header("accept", "application/json");
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|err| {
            if err.is_timeout() {
                "timed out".to_owned()
            } else {
                "connection failed".to_owned()
            }
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|_| "the answer was cut off".to_owned())?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }

    /// A `POST` that moves (or may move) money: sent once.
    async fn post_once(&self, path: &str, body: &Value, extra: &[(&str, &str)]) -> Result<Answer, GatewayError> {
        let answer = self
            .send(Method::POST, path, Some(body), extra)
            .await
            .map_err(GatewayError::Unavailable)?;
        if answer.status.is_success() {
            return Ok(answer);
        }
        if answer.error_type() == Some("DUPLICATE_CUSTOMER_REFERENCE") {
            return Err(GatewayError::Duplicate);
        }
        if answer.is_refusal() {
            return Err(GatewayError::Rejected(answer.message()));
        }
        Err(GatewayError::Unavailable(format!(
            "HTTP {}: {}",
            answer.status.as_u16(),
            answer.message()
        )))
    }

    /// A `GET` lookup, retried with back-off on transient failures. `Ok(None)`
    /// is "not found" (which FinCra classes as ambiguous, so it is not a
    /// failure of the operation looked up).
    async fn lookup(&self, path: &str, extra: &[(&str, &str)]) -> Result<Option<Value>, GatewayError> {
        let mut last_error = String::new();
        for attempt in 1..=READ_ATTEMPTS {
            match self.send(Method::GET, path, None, extra).await {
                Ok(answer) if answer.status.is_success() => return Ok(Some(answer.body["data"].clone())),
                Ok(answer) if answer.is_not_found() => return Ok(None),
                Ok(answer) if answer.is_refusal() => return Err(GatewayError::Rejected(answer.message())),
                Ok(answer) => last_error = format!("HTTP {}: {}", answer.status.as_u16(), answer.message()),
                Err(error) => last_error = error,
            }
            if attempt < READ_ATTEMPTS {
                let backoff = BASE_DELAY * 2_u32.pow(attempt - 1);
                let jitter = Duration::from_millis(rand::rng().random_range(0..=backoff.as_millis() as u64 / 2));
                tracing::info!(attempt, error = %last_error, "payment gateway lookup failed; retrying");
                tokio::time::sleep(backoff + jitter).await;
            }
        }
        Err(GatewayError::Unavailable(format!(
            "{last_error} after {READ_ATTEMPTS} attempts"
        )))
    }
}

/// A checkout's `data` (verify answer or `charge.*` webhook) in our terms.
/// `success` is paid — but a mispayment is also `success`, so the amounts
/// and `varianceType` travel with it for the caller's rule to judge.
pub fn checkout_settlement(data: &Value, currency: Currency) -> Result<Settlement, GatewayError> {
    let status = data["status"].as_str().unwrap_or_default().to_ascii_lowercase();
    match status.as_str() {
        "success" | "successful" => {
            if let Some(reported) = data["currency"].as_str()
                && reported != currency.code()
            {
                return Ok(Settlement::Succeeded {
                    received: 0,
                    variance: Some(format!("paid in {reported}, expected {}", currency.code())),
                });
            }
            let received = ["amountReceived", "amount"]
                .iter()
                .find_map(|field| json_minor_units(&data[*field], currency))
                .ok_or_else(|| GatewayError::Unavailable("a successful checkout without a readable amount".into()))?;
            let variance = data["varianceType"]
                .as_str()
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            Ok(Settlement::Succeeded { received, variance })
        }
        "failed" | "expired" => Ok(Settlement::Failed {
            reason: format!("checkout {status}"),
        }),
        "initiated" | "pending" | "processing" => Ok(Settlement::Pending),
        other => Err(GatewayError::Unavailable(format!("unknown checkout status {other:?}"))),
    }
}

/// A payout's `data` (create, fetch, or `payout.*` webhook) in our terms.
/// Only the explicit `successful` and `failed` settle anything.
pub fn payout_settlement(data: &Value, currency: Currency) -> Result<Settlement, GatewayError> {
    let status = data["status"].as_str().unwrap_or_default().to_ascii_lowercase();
    match status.as_str() {
        "successful" | "success" => Ok(Settlement::Succeeded {
            received: json_minor_units(&data["amountReceived"], currency).unwrap_or(0),
            variance: None,
        }),
        "failed" => Ok(Settlement::Failed {
            reason: data["reason"]
                .as_str()
                .or(data["message"].as_str())
                .unwrap_or("payout failed")
                .to_owned(),
        }),
        "processing" | "pending" | "initiated" | "" => Ok(Settlement::Pending),
        other => Err(GatewayError::Unavailable(format!("unknown payout status {other:?}"))),
    }
}

/// An amount as FinCra takes it: a whole number of major units as a JSON
/// integer, otherwise the exact decimal as a string (its docs show both
/// forms; whether checkout accepts decimals is unconfirmed, and a string
/// keeps them exact either way).
fn wire_amount(amount: i64, currency: Currency) -> Value {
    let scale = 10_i64.pow(currency.exponent());
    if amount % scale == 0 {
        json!(amount / scale)
    } else {
        json!(major_units(amount, currency))
    }
}

fn split_name(full: &str) -> (String, String) {
    let mut words = full.split_whitespace();
    let first = words.next().unwrap_or(full).to_owned();
    let rest: Vec<&str> = words.collect();
    let last = if rest.is_empty() { first.clone() } else { rest.join(" ") };
    (first, last)
}

impl PaymentGateway for Fincra {
    fn name(&self) -> &'static str {
        crate::config::GatewayKind::Fincra.name()
    }

    fn checkout<'a>(&'a self, request: CheckoutRequest<'a>) -> BoxFuture<'a, Result<CheckoutStarted, GatewayError>> {
        Box::pin(async move {
            let body = json!({
                "reference": request.reference,
                "amount": wire_amount(request.amount, request.currency),
                "currency": request.currency.code(),
                "customer": { "name": request.customer_name, "email": request.customer_email },
                "feeBearer": "business",
                "settlementDestination": "wallet",
            });
            let public_key = self
                .public_key
                .as_ref()
                .map(|k| k.expose_secret().to_owned())
                .unwrap_or_default();
            let answer = self
                .post_once("/checkout/payments", &body, &[("x-pub-key", &public_key)])
                .await?;
            Ok(CheckoutStarted {
                checkout_url: answer.body["data"]["link"].as_str().map(str::to_owned),
                settlement: Settlement::Pending,
            })
        })
    }

    fn payout<'a>(&'a self, request: PayoutRequest<'a>) -> BoxFuture<'a, Result<Settlement, GatewayError>> {
        Box::pin(async move {
            let b = &request.beneficiary;
            let (first_name, last_name) = split_name(b.account_name);
            let mut beneficiary = json!({
                "firstName": first_name,
                "lastName": last_name,
                "accountHolderName": b.account_name,
                "accountNumber": b.account_number,
                "type": "individual",
                "country": b.country,
            });
            let destination = match b.kind {
                DestinationKind::BankAccount => {
                    beneficiary["bankCode"] = json!(b.institution_code);
                    "bank_account"
                }
                DestinationKind::MobileMoney => {
                    beneficiary["mobileMoneyCode"] = json!(b.institution_code);
                    "mobile_money_wallet"
                }
            };
            let body = json!({
                "business": self.business(),
                "sourceCurrency": request.currency.code(),
                "destinationCurrency": request.currency.code(),
                "amount": major_units(request.amount, request.currency),
                "description": request.description,
                "paymentDestination": destination,
                "customerReference": request.reference,
                "beneficiary": beneficiary,
            });
            let answer = self.post_once("/disbursements/payouts", &body, &[]).await?;
            payout_settlement(&answer.body["data"], request.currency)
        })
    }

    fn verify_checkout<'a>(
        &'a self,
        reference: &'a str,
        currency: Currency,
    ) -> BoxFuture<'a, Result<Settlement, GatewayError>> {
        Box::pin(async move {
            let path = format!("/checkout/payments/merchant-reference/{}", path_segment(reference));
            match self.lookup(&path, &[("x-business-id", self.business())]).await? {
                Some(data) => checkout_settlement(&data, currency),
                None => Ok(Settlement::NotFound),
            }
        })
    }

    fn fetch_payout<'a>(
        &'a self,
        reference: &'a str,
        currency: Currency,
    ) -> BoxFuture<'a, Result<Settlement, GatewayError>> {
        Box::pin(async move {
            let path = format!("/disbursements/payouts/customer-reference/{}", path_segment(reference));
            match self.lookup(&path, &[]).await? {
                Some(data) => payout_settlement(&data, currency),
                None => Ok(Settlement::NotFound),
            }
        })
    }

    fn resolve_account<'a>(&'a self, query: AccountQuery<'a>) -> BoxFuture<'a, Result<String, GatewayError>> {
        Box::pin(async move {
            let body = match query.kind {
                DestinationKind::BankAccount => json!({
                    "accountNumber": query.account_number,
                    "bankCode": query.institution_code,
                    "type": "nuban",
                    "currency": query.currency.code(),
                }),
                DestinationKind::MobileMoney => json!({
                    "accountNumber": query.account_number,
                    "mobileMoneyCode": query.institution_code,
                    "type": "mobile_money",
                    "currency": query.currency.code(),
                }),
            };
            // Resolving moves no money, so an answerless attempt is simply
            // unavailable: the user tries again.
            let answer = self.post_once("/core/accounts/resolve", &body, &[]).await?;
            // Two documented shapes: {accountName, …} and the older {name, number}.
            let data = &answer.body["data"];
            data["accountName"]
                .as_str()
                .or(data["name"].as_str())
                .filter(|name| !name.trim().is_empty())
                .map(str::to_owned)
                .ok_or_else(|| GatewayError::Unavailable("account resolved without a name".into()))
        })
    }
}

/// Our references are `[a-z0-9_]`; anything else is refused rather than
/// spliced into a URL path.
fn path_segment(reference: &str) -> String {
    reference
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_amounts_go_as_integers_and_fractions_as_exact_strings() {
        assert_eq!(wire_amount(35_000, Currency::Ngn), json!(350));
        assert_eq!(wire_amount(250_050, Currency::Ngn), json!("2500.50"));
        assert_eq!(wire_amount(500, Currency::Jpy), json!(500));
    }

    #[test]
    fn checkout_statuses_map_explicitly_and_mispayments_keep_their_numbers() {
        let ngn = Currency::Ngn;
        let paid = json!({"status": "success", "amountReceived": 1000, "amountExpected": 1000, "currency": "NGN", "varianceType": null});
        assert_eq!(
            checkout_settlement(&paid, ngn),
            Ok(Settlement::Succeeded {
                received: 100_000,
                variance: None
            })
        );
        let under = json!({"status": "success", "amountReceived": "10", "amountExpected": 1000, "varianceType": "underpayment"});
        assert_eq!(
            checkout_settlement(&under, ngn),
            Ok(Settlement::Succeeded {
                received: 1_000,
                variance: Some("underpayment".into())
            })
        );
        assert!(matches!(
            checkout_settlement(&json!({"status": "expired"}), ngn),
            Ok(Settlement::Failed { .. })
        ));
        assert_eq!(
            checkout_settlement(&json!({"status": "initiated"}), ngn),
            Ok(Settlement::Pending)
        );
        assert!(checkout_settlement(&json!({"status": "weird"}), ngn).is_err());
        let other_currency = json!({"status": "success", "amount": 1000, "currency": "USD"});
        assert!(matches!(
            checkout_settlement(&other_currency, ngn),
            Ok(Settlement::Succeeded { variance: Some(_), .. })
        ));
    }

    #[test]
    fn payout_statuses_settle_only_on_explicit_values() {
        let ngn = Currency::Ngn;
        assert!(matches!(
            payout_settlement(&json!({"status": "successful"}), ngn),
            Ok(Settlement::Succeeded { .. })
        ));
        assert_eq!(
            payout_settlement(&json!({"status": "failed", "reason": "account closed"}), ngn),
            Ok(Settlement::Failed {
                reason: "account closed".into()
            })
        );
        assert_eq!(
            payout_settlement(&json!({"status": "processing"}), ngn),
            Ok(Settlement::Pending)
        );
    }
}
