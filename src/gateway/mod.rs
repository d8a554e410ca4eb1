//! Payment gateways: one trait, two implementations chosen by
//! `PAYMENT_GATEWAY` — [`sandbox::Sandbox`] (the default outside production:
//! no network, deterministic) and [`fincra::Fincra`] (FinCra's HTTP API as
//! its public documentation describes it).
//!
//! The trait speaks our vocabulary: minor units, our references, and a
//! [`Settlement`] that says what the provider knows about an operation. How
//! a provider names statuses, units and errors stays inside its module.
//!
//! Every call goes through [`observed`]: counted and timed by provider,
//! operation and outcome, inside a client span, and remembered as the last
//! outcome `/health` reports.

pub mod fincra;
pub mod sandbox;
pub mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use crate::config::{GatewayKind, PaymentConfig};
use crate::domain::money::Currency;
pub use crate::domain::payment::Settlement;
use crate::domain::payout::DestinationKind;
use crate::telemetry::metrics::{GatewayLabels, GatewayOperationLabels, Metrics};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The provider refused the request and did nothing (a genuine failure:
    /// bad details, limits, insufficient provider balance). Final.
    #[error("the payment provider refused the request: {0}")]
    Rejected(String),
    /// No definite answer (timeout, 5xx, connection lost, an "ambiguous"
    /// error type): the provider may or may not have acted. Never a reason
    /// to roll back or to send again blind: ask the provider later.
    #[error("the payment provider gave no definite answer: {0}")]
    Unavailable(String),
    /// The provider already has an operation with this reference (a retry
    /// of something it received before): look it up.
    #[error("the payment provider already has an operation with this reference")]
    Duplicate,
}

/// Starts collecting money from a customer (a deposit).
#[derive(Debug, Clone)]
pub struct CheckoutRequest<'a> {
    /// Our transaction id: FinCra's `reference` (merchant reference).
    pub reference: &'a str,
    pub amount: i64,
    pub currency: Currency,
    pub customer_name: &'a str,
    pub customer_email: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutStarted {
    /// Where the customer pays (hosted checkout), if anywhere.
    pub checkout_url: Option<String>,
    /// What is already known: `Pending` for a real provider, the outcome at
    /// once for the sandbox.
    pub settlement: Settlement,
}

/// Where a payout goes, as registered and resolved.
#[derive(Debug, Clone)]
pub struct Beneficiary<'a> {
    pub kind: DestinationKind,
    pub country: &'a str,
    /// Bank code or mobile-money operator code.
    pub institution_code: &'a str,
    pub account_number: &'a str,
    /// The name the provider resolved for the account.
    pub account_name: &'a str,
}

/// Sends money to a customer (a withdrawal).
#[derive(Debug, Clone)]
pub struct PayoutRequest<'a> {
    /// Our transaction id: FinCra's `customerReference`, its deduplication key.
    pub reference: &'a str,
    pub amount: i64,
    pub currency: Currency,
    pub description: &'a str,
    pub beneficiary: Beneficiary<'a>,
}

/// An account to name before money is sent to it.
#[derive(Debug, Clone)]
pub struct AccountQuery<'a> {
    pub kind: DestinationKind,
    pub currency: Currency,
    pub institution_code: &'a str,
    pub account_number: &'a str,
    /// What the user says the account is called (the sandbox echoes it for
    /// accounts outside its documented test set).
    pub holder_name: &'a str,
}

pub trait PaymentGateway: Send + Sync {
    /// The provider's name in metrics, webhooks and records.
    fn name(&self) -> &'static str;
    fn checkout<'a>(&'a self, request: CheckoutRequest<'a>) -> BoxFuture<'a, Result<CheckoutStarted, GatewayError>>;
    fn payout<'a>(&'a self, request: PayoutRequest<'a>) -> BoxFuture<'a, Result<Settlement, GatewayError>>;
    /// What the provider says about a checkout, by our reference.
    fn verify_checkout<'a>(
        &'a self,
        reference: &'a str,
        currency: Currency,
    ) -> BoxFuture<'a, Result<Settlement, GatewayError>>;
    /// What the provider says about a payout, by our reference.
    fn fetch_payout<'a>(
        &'a self,
        reference: &'a str,
        currency: Currency,
    ) -> BoxFuture<'a, Result<Settlement, GatewayError>>;
    /// The account holder's name as the provider knows it; `Rejected` when
    /// the account cannot be resolved.
    fn resolve_account<'a>(&'a self, query: AccountQuery<'a>) -> BoxFuture<'a, Result<String, GatewayError>>;
}

pub fn build(config: &PaymentConfig) -> Result<Arc<dyn PaymentGateway>, String> {
    match config.gateway {
        GatewayKind::Sandbox => Ok(Arc::new(sandbox::Sandbox::new(config.sandbox.clone()))),
        GatewayKind::Fincra => Ok(Arc::new(fincra::Fincra::new(config)?)),
    }
}

/// The outcome label of one call.
fn outcome_of<T>(result: &Result<T, GatewayError>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(GatewayError::Rejected(_) | GatewayError::Duplicate) => "error",
        Err(GatewayError::Unavailable(_)) => "timeout",
    }
}

/// Runs one gateway call with its span, count, latency and last outcome.
pub async fn observed<T>(
    metrics: &Metrics,
    provider: &'static str,
    operation: &'static str,
    call: impl Future<Output = Result<T, GatewayError>>,
) -> Result<T, GatewayError> {
    let span = tracing::info_span!(
        "gateway.call",
        otel.name = format!("{provider} {operation}"),
        otel.kind = "client",
        payment.provider = provider,
        payment.operation = operation,
    );
    let started = Instant::now();
    let result = call.instrument(span).await;
    let outcome = outcome_of(&result);
    metrics
        .gateway_requests
        .get_or_create(&GatewayLabels {
            provider,
            operation,
            outcome,
        })
        .inc();
    metrics.gateway_request_duration.observe(
        &GatewayOperationLabels { provider, operation },
        started.elapsed().as_secs_f64(),
    );
    metrics.gateway_calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    metrics.note_gateway_outcome(operation, outcome);
    if let Err(err) = &result {
        // A refusal is an answer; only "no definite answer" counts against
        // the provider's health.
        if matches!(err, GatewayError::Unavailable(_)) {
            metrics
                .gateway_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        tracing::warn!(provider, operation, error = %err, "payment gateway call did not succeed");
    }
    result
}

/// Minor units as the decimal string of major units providers expect
/// (250050 NGN → "2500.50"; 500 JPY → "500"). Integer arithmetic only.
pub fn major_units(amount: i64, currency: Currency) -> String {
    let exponent = currency.exponent();
    if exponent == 0 {
        return amount.to_string();
    }
    let scale = 10_i64.pow(exponent);
    let sign = if amount < 0 { "-" } else { "" };
    let magnitude = amount.unsigned_abs();
    let scale = scale.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        magnitude / scale,
        magnitude % scale,
        width = exponent as usize
    )
}

/// A decimal string of major units ("2500.5", "2500.50", "350") as minor
/// units, exactly; `None` for anything that is not a plain non-negative
/// decimal, has more fraction digits than the currency (other than trailing
/// zeros), or does not fit.
pub fn minor_units(major: &str, currency: Currency) -> Option<i64> {
    let exponent = currency.exponent() as usize;
    let major = major.trim();
    let (whole, fraction) = major.split_once('.').unwrap_or((major, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = fraction.trim_end_matches('0');
    if significant.len() > exponent {
        return None;
    }
    let mut digits = String::with_capacity(whole.len() + exponent);
    digits.push_str(whole);
    digits.push_str(significant);
    for _ in significant.len()..exponent {
        digits.push('0');
    }
    digits.parse::<i64>().ok()
}

/// A JSON amount in major units (a number or a string, as providers send
/// either) as minor units. A number arrives as `f64` in `serde_json`; its
/// shortest round-trip rendering is the decimal the provider wrote for any
/// amount up to 15 significant digits, which covers every amount we accept.
pub fn json_minor_units(value: &serde_json::Value, currency: Currency) -> Option<i64> {
    match value {
        serde_json::Value::String(text) => minor_units(text, currency),
        serde_json::Value::Number(number) => {
            if let Some(whole) = number.as_u64() {
                minor_units(&whole.to_string(), currency)
            } else {
                number
                    .as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .and_then(|f| minor_units(&format!("{f}"), currency))
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_become_major_unit_strings_without_floats() {
        assert_eq!(major_units(250050, Currency::Ngn), "2500.50");
        assert_eq!(major_units(5, Currency::Usd), "0.05");
        assert_eq!(major_units(500, Currency::Jpy), "500");
        assert_eq!(major_units(9_007_199_254_740_993, Currency::Usd), "90071992547409.93");
    }

    #[test]
    fn major_unit_answers_become_exact_minor_units() {
        assert_eq!(minor_units("2500.50", Currency::Ngn), Some(250050));
        assert_eq!(minor_units("2500.5", Currency::Ngn), Some(250050));
        assert_eq!(minor_units("350", Currency::Ngn), Some(35000));
        assert_eq!(minor_units("350.000", Currency::Ngn), Some(35000));
        assert_eq!(minor_units("500", Currency::Jpy), Some(500));
        assert_eq!(minor_units("0.001", Currency::Ngn), None, "a fraction of a kobo");
        assert_eq!(minor_units("5.5", Currency::Jpy), None);
        assert_eq!(minor_units("-1", Currency::Ngn), None);
        assert_eq!(minor_units("1e3", Currency::Ngn), None);
        assert_eq!(minor_units("", Currency::Ngn), None);
        assert_eq!(minor_units("99999999999999999999", Currency::Ngn), None);
        let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
        assert_eq!(json_minor_units(&json("2500.5"), Currency::Ngn), Some(250050));
        assert_eq!(json_minor_units(&json("1000"), Currency::Ngn), Some(100000));
        assert_eq!(json_minor_units(&json("\"1000.10\""), Currency::Ngn), Some(100010));
        assert_eq!(json_minor_units(&json("0.1"), Currency::Usd), Some(10));
        assert_eq!(
            json_minor_units(&json("123456789012.34"), Currency::Usd),
            Some(12345678901234)
        );
        assert_eq!(json_minor_units(&json("null"), Currency::Ngn), None);
        assert_eq!(json_minor_units(&json("-5"), Currency::Ngn), None);
    }
}
