//! `POST /api/v1/webhooks/payments/{provider}`: FinCra's word that a
//! checkout or payout changed. Verified over the raw body before anything
//! is parsed (header `signature`, HMAC-SHA512), deduplicated by event and
//! reference, and never trusted alone: the operation is looked up at FinCra
//! and settled from that answer ([`crate::operations::payments`]).
//!
//! Answers 200 to everything correctly signed (FinCra only needs to know it
//! arrived); the body says what was done. Unsigned or wrongly signed: 401.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use crate::domain::payment::PaymentKind;
use crate::gateway::webhook;
use crate::state::AppState;

pub const TAG: &str = "webhooks";

/// What FinCra sends: `{"event": "...", "data": {...}}`.
#[derive(Deserialize, ToSchema)]
pub struct PaymentEvent {
    /// `charge.successful`, `payout.successful`, `payout.failed`, …
    pub event: String,
    pub data: EventData,
}

/// The references FinCra puts in an event (which appear depends on the event).
#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct EventData {
    /// Checkouts: our reference (or FinCra's `fcr-p-…` pay code).
    pub reference: Option<String>,
    /// Checkouts (older payloads): our reference.
    pub merchant_reference: Option<String>,
    /// Payouts: our reference.
    pub customer_reference: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookAck {
    /// processed, duplicate, unknown_reference, kind_mismatch, deferred or ignored.
    pub outcome: &'static str,
}

#[utoipa::path(post, path = "/api/v1/webhooks/payments/{provider}", tag = TAG, params(
        ("provider" = String, Path, description = "fincra"),
        ("signature" = String, Header, description = "lowercase hex HMAC-SHA512 of the body, keyed with FINCRA_WEBHOOK_SECRET"),
    ), request_body = PaymentEvent, responses(
        (status = 200, body = WebhookAck),
        (status = 400, description = "signed, but not a payment event", body = super::error::Problem),
        (status = 401, description = "unsigned or wrongly signed", body = super::error::Problem),
        (status = 404, description = "unknown provider, or webhooks not configured", body = super::error::Problem),
    ))]
pub async fn payment(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAck>, ApiError> {
    if provider != "fincra" || state.gateway.name() != "fincra" {
        return Err(ApiError::not_found("no payment webhook endpoint for this provider"));
    }
    let payments = &state.payments;
    let secret = state
        .config
        .payments
        .fincra_webhook_secret
        .as_ref()
        .ok_or_else(|| ApiError::not_found("payment webhooks are not configured (FINCRA_WEBHOOK_SECRET)"))?;
    let signature = headers.get(webhook::SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if let Err(err) = webhook::verify(secret.expose_secret().as_bytes(), signature, &body) {
        payments.count_webhook("rejected");
        tracing::warn!(reason = %err, "payment webhook refused");
        return Err(ApiError::unauthorized(err.to_string()));
    }
    super::extract::refuse_nul(&body)?;
    let event: PaymentEvent = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the webhook body is not a FinCra event ({{event, data}}): {e}")))?;
    let data = &event.data;
    let (kind, references): (PaymentKind, Vec<&str>) = match event.event.as_str() {
        "charge.successful" | "charge.failed" => (
            PaymentKind::Deposit,
            [&data.merchant_reference, &data.reference]
                .into_iter()
                .filter_map(|r| r.as_deref())
                .collect(),
        ),
        "payout.successful" | "payout.failed" | "payout.reversed" => (
            PaymentKind::Withdrawal,
            data.customer_reference.as_deref().into_iter().collect(),
        ),
        other => {
            // Collections, conversions, virtual accounts: not ours.
            tracing::info!(event = other, "payment webhook for an event we do not use; ignored");
            payments.count_webhook("ignored");
            return Ok(Json(WebhookAck { outcome: "ignored" }));
        }
    };
    if references.is_empty() {
        return Err(ApiError::bad_request(
            "the webhook names no reference (data.reference, data.merchantReference or data.customerReference)",
        ));
    }
    let outcome = payments.handle_webhook(&event.event, kind, &references).await?.as_str();
    payments.count_webhook(outcome);
    Ok(Json(WebhookAck { outcome }))
}
