//! Payments: which gateway, FinCra's credentials, the sandbox's knobs and
//! the reconciliation worker.

use std::time::Duration;

use secrecy::SecretString;

use super::{ConfigError, Environment, Vars};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayKind {
    /// No network, deterministic, confirms at once: the embedded default.
    Sandbox,
    /// A FinCra-compatible HTTP API at `FINCRA_BASE_URL`.
    Fincra,
}

impl GatewayKind {
    pub const ALL: [GatewayKind; 2] = [GatewayKind::Sandbox, GatewayKind::Fincra];

    /// The `provider` label of its metrics and logs (what each gateway's
    /// `PaymentGateway::name` answers).
    pub const fn name(self) -> &'static str {
        match self {
            GatewayKind::Sandbox => "sandbox",
            GatewayKind::Fincra => "fincra",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PaymentConfig {
    pub gateway: GatewayKind,
    /// FinCra's secret key, sent as `api-key` on every call.
    pub fincra_api_key: Option<SecretString>,
    /// Kept from the original's settings; FinCra's documented calls do not use it.
    pub fincra_api_secret: Option<SecretString>,
    /// FinCra's public key, sent as `x-pub-key` when creating a checkout.
    pub fincra_public_key: Option<SecretString>,
    /// FinCra's business id: `x-business-id` on checkout verification and
    /// `business` in payout bodies.
    pub fincra_business_id: Option<String>,
    /// `https://api.fincra.com` in production, FinCra's sandbox elsewhere,
    /// unless `FINCRA_BASE_URL` says otherwise.
    pub fincra_base_url: String,
    /// Verifies `POST /api/v1/webhooks/payments/fincra` (`signature` header).
    pub fincra_webhook_secret: Option<SecretString>,
    /// How long one FinCra call may take (`FINCRA_TIMEOUT_SECONDS`).
    pub fincra_timeout: Duration,
    /// The sandbox's knobs (`SANDBOX_OUTCOME`, `SANDBOX_DELAY_MS`).
    pub sandbox: SandboxConfig,
    pub reconcile: ReconcileConfig,
    /// Platform fee taken at hold, in basis points (250 = 2.5%).
    pub platform_fee_bps: u32,
}

/// The reconciliation worker: pending deposits and withdrawals are asked
/// about at the provider once they are `min_age` old.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// Run the worker in `serve` (`RECONCILE_ENABLED`); `amani reconcile`
    /// runs one pass by hand either way.
    pub enabled: bool,
    pub interval: Duration,
    /// Younger records are left to the request and the webhook.
    pub min_age: Duration,
    /// Older pending records count as stuck (metric, alert).
    pub stuck_after: Duration,
    /// A deposit whose checkout the provider has never heard of is failed
    /// after this long (nothing can be paid into a checkout that does not
    /// exist; FinCra expires unpaid checkouts after 2 hours).
    pub deposit_expiry: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxOutcome {
    #[default]
    Succeed,
    Pending,
    Fail,
    TimeoutAfterExecute,
    Mispay,
}

impl SandboxOutcome {
    pub const NAMES: &'static str = "succeed, pending, fail, timeout_after_execute or mispay";

    pub fn parse(text: &str) -> Option<SandboxOutcome> {
        match text {
            "succeed" => Some(SandboxOutcome::Succeed),
            "pending" => Some(SandboxOutcome::Pending),
            "fail" => Some(SandboxOutcome::Fail),
            "timeout_after_execute" => Some(SandboxOutcome::TimeoutAfterExecute),
            "mispay" => Some(SandboxOutcome::Mispay),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SandboxOutcome::Succeed => "succeed",
            SandboxOutcome::Pending => "pending",
            SandboxOutcome::Fail => "fail",
            SandboxOutcome::TimeoutAfterExecute => "timeout_after_execute",
            SandboxOutcome::Mispay => "mispay",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SandboxConfig {
    pub outcome: SandboxOutcome,
    /// Added to every call, to see what a slow provider does.
    pub delay: Duration,
}

/// FinCra's documented base URLs.
pub const FINCRA_LIVE_URL: &str = "https://api.fincra.com";
pub const FINCRA_SANDBOX_URL: &str = "https://sandboxapi.fincra.com";

pub(super) fn parse_payments(vars: &Vars, environment: Environment) -> Result<PaymentConfig, ConfigError> {
    let production = environment == Environment::Production;
    let secret = |name: &'static str| vars.secret(name);
    let seconds = |name: &'static str, default: u64, range| -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(vars.parse_range(name, default, range)?))
    };
    let payments = PaymentConfig {
        gateway: vars.parse_with("PAYMENT_GATEWAY", GatewayKind::Sandbox, |v| {
            GatewayKind::ALL
                .into_iter()
                .find(|kind| v.eq_ignore_ascii_case(kind.name()))
                .ok_or_else(|| "sandbox or fincra".into())
        })?,
        fincra_api_key: secret("FINCRA_API_KEY"),
        fincra_api_secret: secret("FINCRA_API_SECRET"),
        fincra_public_key: secret("FINCRA_PUBLIC_KEY"),
        fincra_business_id: vars.get("FINCRA_BUSINESS_ID").map(str::to_owned),
        fincra_base_url: vars
            .text(
                "FINCRA_BASE_URL",
                if production {
                    FINCRA_LIVE_URL
                } else {
                    FINCRA_SANDBOX_URL
                },
            )
            .trim_end_matches('/')
            .to_owned(),
        fincra_webhook_secret: secret("FINCRA_WEBHOOK_SECRET"),
        fincra_timeout: seconds("FINCRA_TIMEOUT_SECONDS", 10, 1..=120)?,
        sandbox: SandboxConfig {
            outcome: vars.parse_with("SANDBOX_OUTCOME", Default::default(), |v| {
                SandboxOutcome::parse(v).ok_or_else(|| SandboxOutcome::NAMES.to_owned())
            })?,
            delay: Duration::from_millis(vars.parse_range("SANDBOX_DELAY_MS", 0, 0..=600_000)?),
        },
        reconcile: ReconcileConfig {
            enabled: vars.parse_bool("RECONCILE_ENABLED", true)?,
            interval: seconds("RECONCILE_INTERVAL_SECONDS", 60, 1..=86_400)?,
            min_age: seconds("RECONCILE_MIN_AGE_SECONDS", 60, 0..=86_400)?,
            stuck_after: seconds("PAYMENT_STUCK_AFTER_SECONDS", 3600, 60..=30 * 86_400)?,
            deposit_expiry: seconds("DEPOSIT_EXPIRY_SECONDS", 3 * 3600, 60..=30 * 86_400)?,
        },
        platform_fee_bps: vars.parse_range("PLATFORM_FEE_BPS", 250, 0..=5000)?,
    };
    match payments.gateway {
        GatewayKind::Sandbox if production => {
            return Err(ConfigError::Refused {
                name: "PAYMENT_GATEWAY",
                reason: "ENVIRONMENT=production cannot use the sandbox gateway (the default): it credits money \
                         that does not exist. Set PAYMENT_GATEWAY=fincra with FINCRA_API_KEY, FINCRA_PUBLIC_KEY, \
                         FINCRA_BUSINESS_ID and FINCRA_WEBHOOK_SECRET"
                    .into(),
            });
        }
        GatewayKind::Sandbox => {}
        GatewayKind::Fincra => {
            let required: &[(&'static str, bool)] = if production {
                &[
                    ("FINCRA_API_KEY", payments.fincra_api_key.is_some()),
                    ("FINCRA_PUBLIC_KEY", payments.fincra_public_key.is_some()),
                    ("FINCRA_BUSINESS_ID", payments.fincra_business_id.is_some()),
                    ("FINCRA_WEBHOOK_SECRET", payments.fincra_webhook_secret.is_some()),
                ]
            } else {
                &[("FINCRA_API_KEY", payments.fincra_api_key.is_some())]
            };
            if let Some((name, _)) = required.iter().find(|(_, set)| !set) {
                return Err(ConfigError::Refused {
                    name,
                    reason: format!(
                        "PAYMENT_GATEWAY=fincra needs {name}{}",
                        if production {
                            " in production (checkouts, payouts and webhooks all need it)"
                        } else {
                            ""
                        }
                    ),
                });
            }
        }
    }
    Ok(payments)
}
