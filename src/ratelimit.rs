//! Rate limits for the endpoints worth attacking (sign-up, login), per
//! client IP and per email.
//!
//! One algorithm, two stores: GCRA (the generic cell rate algorithm) with
//! `RATE_LIMIT_PER_MINUTE` sustained and `RATE_LIMIT_BURST_SIZE` at once.
//! In process it is `governor`'s keyed limiter; with `REDIS_URL` the same
//! arithmetic runs as a Lua script in Redis (on Redis' clock), so replicas
//! share one budget. If Redis stops answering, the in-process limiter takes
//! over (said once in the log) rather than failing or blocking requests.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use redis::aio::ConnectionManager;
use secrecy::ExposeSecret;

use crate::config::RateLimitConfig;

/// How long a Redis answer may take before the local limiter decides.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

const GCRA_SCRIPT: &str = r#"
-- KEYS[1]: the key; ARGV[1]: emission interval (ms); ARGV[2]: burst tolerance (ms).
-- Returns 0 when allowed, else the milliseconds until the next allowed request.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if allow_at > now then return allow_at - now end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now + 1000)
return 0
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Limited { retry_after: Duration },
}

pub struct RateLimiter {
    enabled: bool,
    local: DefaultKeyedRateLimiter<String>,
    redis: Option<ConnectionManager>,
    script: redis::Script,
    interval_ms: u64,
    tolerance_ms: u64,
    /// True while Redis is failing, so the fallback is logged once.
    degraded: AtomicBool,
}

impl RateLimiter {
    /// Must run inside the Tokio runtime (the Redis connection is lazy but
    /// bound to it).
    pub fn new(config: &RateLimitConfig) -> Result<RateLimiter, redis::RedisError> {
        let per_minute = NonZeroU32::new(config.per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
        let redis = match &config.redis_url {
            Some(url) => {
                let client = redis::Client::open(url.expose_secret())?;
                let manager_config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT))
                    .set_response_timeout(Some(REDIS_TIMEOUT))
                    .set_number_of_retries(1);
                Some(ConnectionManager::new_lazy_with_config(client, manager_config)?)
            }
            None => None,
        };
        let interval_ms = 60_000 / u64::from(per_minute.get()).max(1);
        Ok(RateLimiter {
            enabled: config.enabled,
            local: DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            redis,
            script: redis::Script::new(GCRA_SCRIPT),
            interval_ms: interval_ms.max(1),
            // governor lets `burst` requests through at once: a tolerance of
            // (burst - 1) intervals gives Redis the same behaviour.
            tolerance_ms: interval_ms.max(1) * u64::from(burst.get() - 1),
            degraded: AtomicBool::new(false),
        })
    }

    /// Counts one request against `key` (e.g. `login:ip:203.0.113.7`).
    pub async fn check(&self, key: &str) -> Verdict {
        if !self.enabled {
            return Verdict::Allowed;
        }
        if let Some(redis) = &self.redis {
            match self.check_redis(redis.clone(), key).await {
                Ok(verdict) => {
                    if self.degraded.swap(false, Ordering::AcqRel) {
                        tracing::info!("rate limiter: Redis answers again; limits are shared across replicas");
                    }
                    return verdict;
                }
                Err(reason) => {
                    if !self.degraded.swap(true, Ordering::AcqRel) {
                        tracing::warn!(error = %reason, "rate limiter: Redis unavailable; falling back to in-process limits");
                    }
                }
            }
        }
        self.check_local(key)
    }

    fn check_local(&self, key: &str) -> Verdict {
        match self.local.check_key(&key.to_owned()) {
            Ok(()) => Verdict::Allowed,
            Err(not_until) => Verdict::Limited {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            },
        }
    }

    async fn check_redis(&self, mut redis: ConnectionManager, key: &str) -> Result<Verdict, String> {
        let mut invocation = self.script.key(format!("amani:ratelimit:{key}"));
        invocation.arg(self.interval_ms).arg(self.tolerance_ms);
        let call = invocation.invoke_async::<u64>(&mut redis);
        match tokio::time::timeout(REDIS_TIMEOUT * 2, call).await {
            Ok(Ok(0)) => Ok(Verdict::Allowed),
            Ok(Ok(wait_ms)) => Ok(Verdict::Limited {
                retry_after: Duration::from_millis(wait_ms),
            }),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("no answer in time".into()),
        }
    }

    /// Forgets old in-process keys (called periodically).
    pub fn shrink(&self) {
        self.local.retain_recent();
    }
}
