//! A FinCra-compatible HTTP gateway.
//!
//! Requests carry the `api-key` header, our `X-Request-ID` and the W3C
//! `traceparent`. Each call has a 10 s timeout and is retried (up to 3
//! attempts, exponential back-off with jitter) on timeouts, connection
//! errors and 5xx only; a 4xx is final. Our transaction id is the
//! `reference`, so a retry the provider already processed is deduplicated
//! there instead of charging twice.

use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{Accepted, BoxFuture, GatewayError, PaymentGateway, PaymentRequest, major_units};
use crate::config::PaymentConfig;

pub const ATTEMPTS: u32 = 3;
pub const TIMEOUT: Duration = Duration::from_secs(10);
const BASE_DELAY: Duration = Duration::from_millis(200);

pub struct Fincra {
    client: reqwest::Client,
    base_url: String,
    api_key: SecretString,
}

impl Fincra {
    pub fn new(config: &PaymentConfig) -> Result<Fincra, String> {
        let api_key = config.fincra_api_key.clone().ok_or("FINCRA_API_KEY is required")?;
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Fincra {
            client,
            base_url: config.fincra_base_url.clone(),
            api_key,
        })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, GatewayError> {
        let url = format!("{}{}", self.base_url, path);
        let mut last_error = String::new();
        for attempt in 1..=ATTEMPTS {
            let mut headers = http::HeaderMap::new();
            crate::telemetry::traces::inject_trace(&mut headers);
            if let Some(id) = crate::http::request_id::current()
                && let Ok(value) = http::HeaderValue::from_str(id.as_str())
            {
                headers.insert("x-request-id", value);
            }
            let response = self
                .client
                .post(&url)
                .headers(headers)
                .header("api-key", self.api_key.expose_secret())
                .json(&body)
                .send()
                .await;
            match response {
                Ok(response) if response.status().is_success() => {
                    return response
                        .json()
                        .await
                        .map_err(|e| GatewayError::Unavailable(format!("unreadable answer: {e}")));
                }
                Ok(response)
                    if response.status().is_server_error() || response.status() == StatusCode::TOO_MANY_REQUESTS =>
                {
                    last_error = format!("HTTP {}", response.status().as_u16());
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    let message = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["message"].as_str().map(str::to_owned))
                        .unwrap_or_else(|| format!("HTTP {status}"));
                    return Err(GatewayError::Rejected(message));
                }
                Err(err) => {
                    last_error = if err.is_timeout() {
                        "timed out".into()
                    } else {
                        "connection failed".into()
                    }
                }
            }
            if attempt < ATTEMPTS {
                let backoff = BASE_DELAY * 2_u32.pow(attempt - 1);
                let jitter = Duration::from_millis(rand::rng().random_range(0..=backoff.as_millis() as u64 / 2));
                tracing::info!(attempt, error = %last_error, "payment gateway call failed; retrying");
                tokio::time::sleep(backoff + jitter).await;
            }
        }
        Err(GatewayError::Unavailable(format!(
            "{last_error} after {ATTEMPTS} attempts"
        )))
    }
}

impl PaymentGateway for Fincra {
    fn name(&self) -> &'static str {
        "fincra"
    }

    fn checkout<'a>(&'a self, request: PaymentRequest<'a>) -> BoxFuture<'a, Result<Accepted, GatewayError>> {
        Box::pin(async move {
            let body = json!({
                "reference": request.reference,
                "amount": major_units(request.amount, request.currency),
                "currency": request.currency.code(),
                "customer": { "email": request.customer_email },
            });
            let answer = self.post("/checkout/payments", body).await?;
            Ok(Accepted {
                checkout_url: answer["data"]["link"].as_str().map(str::to_owned),
                confirmed: false,
            })
        })
    }

    fn payout<'a>(&'a self, request: PaymentRequest<'a>) -> BoxFuture<'a, Result<Accepted, GatewayError>> {
        Box::pin(async move {
            let body = json!({
                "customerReference": request.reference,
                "amount": major_units(request.amount, request.currency),
                "sourceCurrency": request.currency.code(),
                "destinationCurrency": request.currency.code(),
                "beneficiary": { "email": request.customer_email },
            });
            self.post("/disbursements/transfers", body).await?;
            Ok(Accepted {
                checkout_url: None,
                confirmed: false,
            })
        })
    }
}
