//! `POST /api/v1/webhooks/payments/{provider}`: the gateway's word that a
//! deposit or payout settled. Verified over the raw body before anything is
//! parsed, idempotent by the provider's event id, and safe to replay.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiError;
use crate::escrow::{self, Confirmation};
use crate::gateway::webhook;
use crate::state::AppState;
use crate::store::webhooks;
use crate::telemetry::metrics::WebhookLabels;

pub const TAG: &str = "webhooks";

/// What the provider sends (FinCra's shape).
#[derive(Deserialize, ToSchema)]
pub struct PaymentEvent {
    /// The provider's event id (deduplication key).
    pub id: String,
    /// `charge.successful`, `charge.failed`, `payout.successful`, `payout.failed`.
    pub event: String,
    pub data: EventData,
}

#[derive(Deserialize, ToSchema)]
pub struct EventData {
    /// Our transaction id, sent with the original request.
    pub reference: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookAck {
    /// processed, duplicate or unknown_reference.
    pub outcome: &'static str,
}

fn count(state: &AppState, provider: &str, outcome: &'static str) {
    state
        .metrics
        .webhooks_received
        .get_or_create(&WebhookLabels {
            provider: provider.to_owned(),
            outcome,
        })
        .inc();
}

#[utoipa::path(post, path = "/api/v1/webhooks/payments/{provider}", tag = TAG, params(
        ("provider" = String, Path, description = "fincra"),
        ("x-fincra-signature" = String, Header, description = "hex HMAC-SHA512 of `{timestamp}.{body}`"),
        ("x-fincra-timestamp" = String, Header, description = "Unix seconds"),
    ), request_body = PaymentEvent, responses(
        (status = 200, body = WebhookAck),
        (status = 401, description = "unsigned, wrongly signed or stale", body = super::error::Problem),
        (status = 404, description = "unknown provider", body = super::error::Problem),
    ))]
pub async fn payment(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAck>, ApiError> {
    if provider != "fincra" {
        return Err(ApiError::not_found("no webhook endpoint for this provider"));
    }
    let secret = state
        .config
        .payments
        .fincra_webhook_secret
        .as_ref()
        .ok_or_else(|| ApiError::not_found("payment webhooks are not configured (FINCRA_WEBHOOK_SECRET)"))?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if let Err(err) = webhook::verify(
        secret.expose_secret().as_bytes(),
        header("x-fincra-signature"),
        header("x-fincra-timestamp"),
        &body,
        now,
    ) {
        count(&state, "fincra", "rejected");
        tracing::warn!(reason = %err, "payment webhook refused");
        return Err(ApiError::unauthorized(err.to_string()));
    }
    let event: PaymentEvent = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the webhook body is not a payment event: {e}")))?;
    let succeeded = match event.event.as_str() {
        "charge.successful" | "payout.successful" => Some(true),
        "charge.failed" | "payout.failed" => Some(false),
        _ => None,
    };
    let mut tx = state.db.begin().await?;
    let confirmation = match succeeded {
        Some(succeeded) => escrow::confirm(&mut tx, &event.data.reference, succeeded).await?,
        None => Confirmation::AlreadySettled,
    };
    let outcome = match confirmation {
        Confirmation::UnknownReference => "unknown_reference",
        _ => "processed",
    };
    let first = webhooks::record(
        &mut tx,
        "fincra",
        &event.id,
        &event.event,
        Some(&event.data.reference),
        outcome,
    )
    .await?;
    if !first {
        // Seen before: nothing this transaction did may stay.
        drop(tx);
        count(&state, "fincra", "duplicate");
        return Ok(Json(WebhookAck { outcome: "duplicate" }));
    }
    let settled = match confirmation {
        Confirmation::Applied => crate::store::escrow::find(&mut tx, &event.data.reference).await?,
        _ => None,
    };
    tx.commit().await?;
    if let Some(settled) = settled {
        super::escrow::count(&state, &[settled]);
    }
    if confirmation == Confirmation::UnknownReference {
        tracing::warn!(event_id = %event.id, reference = %event.data.reference, "payment webhook for an unknown reference; recorded for reconciliation");
    }
    count(&state, "fincra", outcome);
    Ok(Json(WebhookAck { outcome }))
}
