//! Time in escrow: inspection periods, funding deadlines and the scheduler
//! that acts on them.

use std::time::Duration;

use super::{ConfigError, Environment, Vars};

/// The longest inspection period a project or milestone may set (90 days);
/// the database checks the same bound.
pub const MAX_INSPECTION_SECONDS: u64 = 90 * 86_400;
/// Outside production an inspection period may be as short as a second, so
/// the flow can be watched locally; in production at least an hour.
const MIN_PRODUCTION_INSPECTION_SECONDS: u64 = 3_600;

#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// Run the scheduler in `serve` (`SCHEDULER_ENABLED`).
    pub enabled: bool,
    /// The platform's inspection period (`INSPECTION_PERIOD_SECONDS`).
    pub inspection_period: Duration,
    /// The shortest inspection period allowed anywhere (an hour in production).
    pub min_inspection_period: Duration,
    /// A project sent to its seller and not fully funded this long after is
    /// cancelled (`PROJECT_FUNDING_DEADLINE_SECONDS`).
    pub funding_deadline: Duration,
    /// How long the other party has to answer a milestone's dispute before
    /// it is settled for the party who opened it (`DISPUTE_RESPONSE_SECONDS`).
    pub dispute_response: Duration,
    /// How long a replica owns a job it took; a job whose replica died is
    /// taken by another after this (`SCHEDULER_LEASE_SECONDS`).
    pub lease: Duration,
}

impl ScheduleConfig {
    /// A project's or milestone's own inspection period, checked against
    /// the bounds: `Err` says what is allowed.
    pub fn check_inspection_period(&self, seconds: i64) -> Result<i64, String> {
        let min = self.min_inspection_period.as_secs();
        match u64::try_from(seconds) {
            Ok(s) if (min..=MAX_INSPECTION_SECONDS).contains(&s) => Ok(seconds),
            _ => Err(format!(
                "inspection_period_seconds must be from {min} to {MAX_INSPECTION_SECONDS} (90 days)"
            )),
        }
    }
}

pub(super) fn parse_schedule(vars: &Vars, environment: Environment) -> Result<ScheduleConfig, ConfigError> {
    let min = if environment == Environment::Production {
        MIN_PRODUCTION_INSPECTION_SECONDS
    } else {
        1
    };
    Ok(ScheduleConfig {
        enabled: vars.parse_bool("SCHEDULER_ENABLED", true)?,
        inspection_period: Duration::from_secs(vars.parse_range(
            "INSPECTION_PERIOD_SECONDS",
            7 * 86_400,
            min..=MAX_INSPECTION_SECONDS,
        )?),
        min_inspection_period: Duration::from_secs(min),
        funding_deadline: Duration::from_secs(vars.parse_range(
            "PROJECT_FUNDING_DEADLINE_SECONDS",
            30 * 86_400,
            min..=365 * 86_400,
        )?),
        dispute_response: Duration::from_secs(vars.parse_range(
            "DISPUTE_RESPONSE_SECONDS",
            3 * 86_400,
            min..=MAX_INSPECTION_SECONDS,
        )?),
        lease: Duration::from_secs(vars.parse_range("SCHEDULER_LEASE_SECONDS", 60, 1..=3_600)?),
    })
}
