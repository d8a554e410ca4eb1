//! Outbound webhook endpoints (admin): create, change, disable, delete,
//! rotate the secret, read attempts, replay; and the parts of the Standard
//! Webhooks specification the worker signs with.
//!
//! - Secrets are `whsec_` + base64 of 32 random bytes, shown once and stored
//!   sealed (like KYC documents).
//! - An endpoint URL is checked when it is set and again when it is called
//!   ([`is_internal`]): https in production, and no loopback, private,
//!   link-local or other internal address unless
//!   `WEBHOOK_ALLOW_PRIVATE_TARGETS` is on (the default outside production,
//!   so a developer can point one at localhost).

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::OffsetDateTime;

use super::OperationError;
use crate::auth::seal::Sealer;
use crate::config::WebhookConfig;
use crate::domain::event::EventType;
use crate::store::deliveries::{self, Attempt};
use crate::store::webhook_endpoints::{self as endpoints, Changes, Endpoint, NewEndpoint};
use crate::store::{Database, timestamp};

/// How long a rotated-out secret still signs (beside the new one).
pub const ROTATION_OVERLAP: time::Duration = time::Duration::hours(24);
/// Events one range replay sends at most.
pub const MAX_REPLAY: i64 = 10_000;
const SECRET_PREFIX: &str = "whsec_";

/// The admin's side of outbound webhooks.
pub struct Webhooks<'a> {
    pub db: &'a Database,
    pub sealer: &'a Sealer,
    pub config: &'a WebhookConfig,
}

/// An endpoint as created: the only time its secret is shown.
pub struct Created {
    pub endpoint: Endpoint,
    pub secret: String,
}

/// A new signing secret.
fn new_secret() -> Result<String, OperationError> {
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| OperationError::Internal("no randomness for a secret".into()))?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
}

/// The key bytes of a `whsec_…` secret.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` (Standard Webhooks).
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let mut context = aws_lc_rs::hmac::Context::with_key(&key);
    context.update(msg_id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
}

/// The stored form of a list of event types (`*` for all).
pub fn event_types_column(types: &[String]) -> Result<String, OperationError> {
    if types.is_empty() {
        return Err(OperationError::Invalid(
            "event_types must name at least one event type, or \"*\" for all".into(),
        ));
    }
    if types.iter().any(|t| t == "*") {
        return Ok("*".into());
    }
    let mut checked = Vec::new();
    for name in types {
        let event = EventType::parse(name).ok_or_else(|| {
            OperationError::Invalid(format!(
                "event_types: unknown event type {name:?}; the types are listed at GET /api/v1/events (README, \
                 \"Events and webhooks\")"
            ))
        })?;
        if !checked.contains(&event.as_str()) {
            checked.push(event.as_str());
        }
    }
    Ok(format!(",{},", checked.join(",")))
}

/// The stored event types as a list.
pub fn event_types_list(column: &str) -> Vec<String> {
    column.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

/// An address no webhook may reach unless private targets are allowed:
/// loopback, private, link-local, shared, unspecified, broadcast,
/// multicast, documentation ranges and their IPv6 equivalents.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
        }
    }
}

/// Checks an endpoint URL against the rules above; the parsed URL.
pub fn check_url(raw: &str, config: &WebhookConfig) -> Result<url::Url, OperationError> {
    let invalid = |reason: &str| OperationError::Invalid(format!("url {reason}"));
    if raw.len() > 2048 {
        return Err(invalid("must be at most 2048 characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| invalid(&format!("is not a valid URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        "http" if !config.require_https => {}
        "http" => return Err(invalid("must be https in production")),
        other => return Err(invalid(&format!("must be https (not {other})"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "must not carry credentials; the receiver verifies the signature instead",
        ));
    }
    if url.fragment().is_some() {
        return Err(invalid("must not have a #fragment"));
    }
    if !config.allow_private_targets {
        let internal = match url.host() {
            None => true,
            Some(url::Host::Ipv4(ip)) => is_internal(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => is_internal(IpAddr::V6(ip)),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost"
                    || name.ends_with(".localhost")
                    || name.ends_with(".internal")
                    || !name.contains('.')
            }
        };
        if internal {
            return Err(invalid(
                "must not point at a loopback, private or internal address (WEBHOOK_ALLOW_PRIVATE_TARGETS is off)",
            ));
        }
    }
    Ok(url)
}

/// An endpoint's description, bounded (None stays None).
fn optional_description(description: Option<&str>) -> Result<Option<String>, OperationError> {
    description
        .map(|d| crate::domain::account::bounded_text("description", d, 500).map_err(Into::into))
        .transpose()
}

impl Webhooks<'_> {
    fn seal(&self, secret: &str) -> Result<String, OperationError> {
        self.sealer
            .seal(secret.as_bytes())
            .map_err(|e| OperationError::Internal(format!("sealing a webhook secret failed: {e}")))
    }

    #[tracing::instrument(name = "webhook_endpoint.create", skip_all)]
    pub async fn create(
        &self,
        url: &str,
        event_types: &[String],
        description: Option<&str>,
    ) -> Result<Created, OperationError> {
        let url = check_url(url, self.config)?;
        let types = event_types_column(event_types)?;
        let description = optional_description(description)?;
        let secret = new_secret()?;
        let sealed = self.seal(&secret)?;
        let id = uuid::Uuid::now_v7().to_string();
        let mut conn = self.db.acquire().await?;
        let endpoint = endpoints::insert(
            &mut conn,
            NewEndpoint {
                id: &id,
                url: url.as_str(),
                description: description.as_deref(),
                event_types: &types,
                secret_sealed: &sealed,
            },
        )
        .await?;
        tracing::info!(endpoint_id = %endpoint.id, "webhook endpoint created");
        Ok(Created { endpoint, secret })
    }

    pub async fn list(&self) -> Result<Vec<Endpoint>, OperationError> {
        let mut conn = self.db.acquire().await?;
        Ok(endpoints::list(&mut conn).await?)
    }

    pub async fn get(&self, id: &str) -> Result<Endpoint, OperationError> {
        let mut conn = self.db.acquire().await?;
        endpoints::find(&mut conn, id)
            .await?
            .ok_or(OperationError::NotFound("webhook endpoint"))
    }

    /// Changes the URL, types or description; `enabled` turns it on (and
    /// forgets past failures) or off.
    #[tracing::instrument(name = "webhook_endpoint.update", skip_all, fields(endpoint_id = %id))]
    pub async fn update(
        &self,
        id: &str,
        url: Option<&str>,
        event_types: Option<&[String]>,
        description: Option<&str>,
        enabled: Option<bool>,
    ) -> Result<Endpoint, OperationError> {
        let url = url.map(|u| check_url(u, self.config)).transpose()?;
        let types = event_types.map(event_types_column).transpose()?;
        let description = optional_description(description)?;
        let mut conn = self.db.acquire().await?;
        endpoints::update(
            &mut conn,
            id,
            Changes {
                url: url.as_ref().map(url::Url::as_str),
                description: description.as_deref(),
                event_types: types.as_deref(),
                status: enabled.map(|on| if on { "enabled" } else { "disabled" }),
                disabled_reason: Some("disabled by an admin"),
            },
        )
        .await?
        .ok_or(OperationError::NotFound("webhook endpoint"))
    }

    #[tracing::instrument(name = "webhook_endpoint.delete", skip_all, fields(endpoint_id = %id))]
    pub async fn delete(&self, id: &str) -> Result<(), OperationError> {
        let mut tx = self.db.begin().await?;
        if !endpoints::delete(&mut tx, id).await? {
            return Err(OperationError::NotFound("webhook endpoint"));
        }
        tx.commit().await?;
        Ok(())
    }

    /// A new secret, returned once; the old one keeps signing (a second
    /// signature in `webhook-signature`) for [`ROTATION_OVERLAP`].
    #[tracing::instrument(name = "webhook_endpoint.rotate_secret", skip_all, fields(endpoint_id = %id))]
    pub async fn rotate(&self, id: &str) -> Result<(String, String), OperationError> {
        let secret = new_secret()?;
        let sealed = self.seal(&secret)?;
        let until = timestamp::format(OffsetDateTime::now_utc() + ROTATION_OVERLAP);
        let mut conn = self.db.acquire().await?;
        endpoints::rotate(&mut conn, id, &sealed, &until)
            .await?
            .ok_or(OperationError::NotFound("webhook endpoint"))?;
        Ok((secret, until))
    }

    pub async fn attempts(
        &self,
        id: &str,
        event_id: Option<&str>,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Attempt>, OperationError> {
        let mut conn = self.db.acquire().await?;
        if endpoints::find(&mut conn, id).await?.is_none() {
            return Err(OperationError::NotFound("webhook endpoint"));
        }
        Ok(deliveries::attempts(&mut conn, id, event_id, before, limit).await?)
    }

    /// Sends one event, or every event created in `[since, until)`, to the
    /// endpoint again from the first attempt. Returns how many.
    #[tracing::instrument(name = "webhook_endpoint.replay", skip_all, fields(endpoint_id = %id))]
    pub async fn replay(&self, id: &str, what: Replay<'_>) -> Result<usize, OperationError> {
        let now = timestamp::now();
        let mut tx = self.db.begin().await?;
        if endpoints::find(&mut tx, id).await?.is_none() {
            return Err(OperationError::NotFound("webhook endpoint"));
        }
        let ids = match what {
            Replay::Event(event_id) => vec![event_id.to_owned()],
            Replay::Range { since, until } => {
                let ids = deliveries::event_ids_between(&mut tx, since, until, MAX_REPLAY + 1).await?;
                if ids.len() as i64 > MAX_REPLAY {
                    return Err(OperationError::Invalid(format!(
                        "the range holds more than {MAX_REPLAY} events; replay a shorter one"
                    )));
                }
                ids
            }
        };
        for event_id in &ids {
            if !deliveries::replay(&mut tx, event_id, id, &now).await? {
                return Err(OperationError::NotFound("event"));
            }
        }
        tx.commit().await?;
        Ok(ids.len())
    }
}

/// What a replay sends again.
pub enum Replay<'a> {
    Event(&'a str),
    /// Stored timestamps, `until` excluded.
    Range {
        since: &'a str,
        until: &'a str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks reference implementation's own test vector.
    #[test]
    fn signs_the_specification_test_vector() {
        let key = secret_key("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    fn config(production: bool) -> WebhookConfig {
        WebhookConfig {
            delivery_enabled: true,
            timeout: std::time::Duration::from_secs(1),
            retry_schedule: vec![],
            allow_private_targets: !production,
            require_https: production,
            disable_after: std::time::Duration::from_secs(1),
            retention: std::time::Duration::from_secs(1),
        }
    }

    #[test]
    fn production_refuses_internal_and_plain_http_targets() {
        let production = config(true);
        for refused in [
            "http://hooks.example.com/amani",
            "https://127.0.0.1/x",
            "https://localhost:8443/x",
            "https://10.1.2.3/x",
            "https://172.16.0.1/x",
            "https://192.168.1.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:10.0.0.1]/x",
            "https://0.0.0.0/x",
            "https://100.64.0.1/x",
            "https://metadata.google.internal/x",
            "https://intranet/x",
            "https://user:pass@hooks.example.com/x",
            "ftp://hooks.example.com/x",
        ] {
            assert!(check_url(refused, &production).is_err(), "{refused}");
        }
        assert!(check_url("https://hooks.example.com/amani", &production).is_ok());
        assert!(check_url("https://93.184.216.34/x", &production).is_ok());
        let development = config(false);
        assert!(check_url("http://127.0.0.1:9000/hook", &development).is_ok());
    }

    #[test]
    fn event_types_are_checked_against_the_closed_list() {
        assert_eq!(
            event_types_column(&["milestone.funded".into(), "escrow.released".into()]).unwrap(),
            ",milestone.funded,escrow.released,"
        );
        assert_eq!(event_types_column(&["*".into()]).unwrap(), "*");
        assert!(event_types_column(&[]).is_err());
        assert!(event_types_column(&["milestone.paid".into()]).is_err());
        assert_eq!(
            event_types_list(",milestone.funded,escrow.released,"),
            vec!["milestone.funded", "escrow.released"]
        );
    }
}
