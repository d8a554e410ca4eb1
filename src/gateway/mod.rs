//! Payment gateways: one trait, two implementations chosen by
//! `PAYMENT_GATEWAY` — [`sandbox::Sandbox`] (the default: no network,
//! deterministic, confirms at once) and [`fincra::Fincra`] (HTTP).
//!
//! Every call goes through [`observed`]: counted and timed by provider,
//! operation and outcome, inside a client span.

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
use crate::telemetry::metrics::{GatewayLabels, GatewayOperationLabels, Metrics};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The provider refused the request (a 4xx): retrying will not help.
    #[error("the payment provider refused the request: {0}")]
    Rejected(String),
    /// No usable answer (timeouts, 5xx) after the bounded retries.
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
}

/// What a payment request asks for. `reference` is our transaction id: the
/// provider deduplicates on it, so a retried call cannot charge twice.
#[derive(Debug, Clone)]
pub struct PaymentRequest<'a> {
    pub reference: &'a str,
    pub amount: i64,
    pub currency: Currency,
    pub customer_email: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Where the customer pays (checkouts at a hosted page), if anywhere.
    pub checkout_url: Option<String>,
    /// Settled already (the sandbox); otherwise a webhook will say.
    pub confirmed: bool,
}

pub trait PaymentGateway: Send + Sync {
    /// The provider's name in metrics, webhooks and records.
    fn name(&self) -> &'static str;
    /// Starts collecting money from a customer (a deposit).
    fn checkout<'a>(&'a self, request: PaymentRequest<'a>) -> BoxFuture<'a, Result<Accepted, GatewayError>>;
    /// Sends money to a customer (a withdrawal).
    fn payout<'a>(&'a self, request: PaymentRequest<'a>) -> BoxFuture<'a, Result<Accepted, GatewayError>>;
}

pub fn build(config: &PaymentConfig) -> Result<Arc<dyn PaymentGateway>, String> {
    match config.gateway {
        GatewayKind::Sandbox => Ok(Arc::new(sandbox::Sandbox)),
        GatewayKind::Fincra => Ok(Arc::new(fincra::Fincra::new(config)?)),
    }
}

/// Runs one gateway call with its span, count and latency.
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
    let outcome = match &result {
        Ok(_) => "success",
        Err(GatewayError::Rejected(_)) => "error",
        Err(GatewayError::Unavailable(_)) => "timeout",
    };
    metrics
        .gateway_requests
        .get_or_create(&GatewayLabels {
            provider,
            operation,
            outcome,
        })
        .inc();
    metrics
        .gateway_request_duration
        .get_or_create(&GatewayOperationLabels { provider, operation })
        .observe(started.elapsed().as_secs_f64());
    metrics.gateway_calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Err(err) = &result {
        metrics
            .gateway_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(provider, operation, error = %err, "payment gateway call failed");
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
    format!(
        "{}.{:0width$}",
        amount / scale,
        amount % scale,
        width = exponent as usize
    )
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
}
