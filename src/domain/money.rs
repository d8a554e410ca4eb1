//! Money: integer minor units with an ISO-4217 currency. No floats anywhere.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The currencies Amani holds. Adding one is adding a line here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Currency {
    Ngn,
    Usd,
    Kes,
    Ghs,
    Eur,
    Gbp,
    Jpy,
}

impl Currency {
    pub const ALL: [Currency; 7] = [
        Currency::Ngn,
        Currency::Usd,
        Currency::Kes,
        Currency::Ghs,
        Currency::Eur,
        Currency::Gbp,
        Currency::Jpy,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Currency::Ngn => "NGN",
            Currency::Usd => "USD",
            Currency::Kes => "KES",
            Currency::Ghs => "GHS",
            Currency::Eur => "EUR",
            Currency::Gbp => "GBP",
            Currency::Jpy => "JPY",
        }
    }

    /// Digits after the decimal point (ISO 4217 "minor unit"): 2 for most,
    /// 0 for JPY-style currencies.
    pub fn exponent(self) -> u32 {
        match self {
            Currency::Jpy => 0,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = String;
    fn from_str(code: &str) -> Result<Currency, String> {
        Currency::ALL.into_iter().find(|c| c.code() == code).ok_or_else(|| {
            let known: Vec<&str> = Currency::ALL.iter().map(|c| c.code()).collect();
            format!("unsupported currency {code:?}; expected one of {}", known.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_parse_by_exact_code_and_know_their_exponent() {
        assert_eq!("NGN".parse::<Currency>(), Ok(Currency::Ngn));
        assert!("ngn".parse::<Currency>().is_err());
        assert!("XXX".parse::<Currency>().unwrap_err().contains("NGN"));
        assert_eq!(Currency::Jpy.exponent(), 0);
        assert_eq!(Currency::Usd.exponent(), 2);
        assert_eq!(serde_json::to_string(&Currency::Ghs).unwrap(), "\"GHS\"");
    }
}

/// An amount in minor units (kobo, cents) of a currency. Positive by
/// construction when parsed from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

/// The largest amount one operation may move: 10^15 minor units, far below
/// i64::MAX, so sums of many amounts cannot overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// The largest balance any ledger account may hold (and, for the external
/// gateway account, the deepest it may go below zero): 10^17 minor units.
/// Well inside i64 (9.2 × 10^18) and so inside what SQLite stores as an
/// integer (past i64 it silently switches to floating point).
pub const MAX_BALANCE: i64 = 100_000_000_000_000_000;

/// The largest total of one project's milestones: 100 milestones of
/// [`MAX_AMOUNT`].
pub const MAX_PROJECT_TOTAL: i64 = 100 * MAX_AMOUNT;

impl Money {
    /// A positive amount no larger than [`MAX_AMOUNT`].
    pub fn new(minor: i64, currency: Currency) -> Result<Money, super::DomainError> {
        if minor <= 0 {
            return Err(super::DomainError::invalid(
                "amount",
                "must be a positive whole number of minor units",
            ));
        }
        if minor > MAX_AMOUNT {
            return Err(super::DomainError::invalid(
                "amount",
                format!("must be at most {MAX_AMOUNT} minor units"),
            ));
        }
        Ok(Money { minor, currency })
    }
}

/// An amount as clients send it: a JSON integer of minor units, or a string
/// of digits (for clients whose JSON numbers are floats). Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[schema(value_type = i64, example = 250000, minimum = 1, maximum = 1_000_000_000_000_000_i64)]
pub struct MinorUnits(pub i64);

impl<'de> Deserialize<'de> for MinorUnits {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<MinorUnits, D::Error> {
        // The values of `Big` and `Float` are only told apart, never read.
        #[allow(dead_code)]
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Big(u64),
            Float(f64),
            Text(String),
            Null(()),
            Other(serde::de::IgnoredAny),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Int(n) => Ok(MinorUnits(n)),
            Raw::Big(_) => Err(serde::de::Error::custom(format!(
                "amount is too large: at most {MAX_AMOUNT} minor units"
            ))),
            Raw::Float(_) => Err(serde::de::Error::custom(
                "amount must be an integer number of minor units, not a decimal (e.g. 250000 for 2,500.00)",
            )),
            Raw::Null(()) => Err(serde::de::Error::custom(
                "amount is required: an integer number of minor units (e.g. 250000 for 2,500.00)",
            )),
            Raw::Text(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                text.parse().map(MinorUnits).map_err(|_| {
                    serde::de::Error::custom(format!("amount is too large: at most {MAX_AMOUNT} minor units"))
                })
            }
            Raw::Text(_) => Err(serde::de::Error::custom(
                "amount must be an integer number of minor units (e.g. 250000 for 2,500.00), as a number or a string of digits",
            )),
            Raw::Other(_) => Err(serde::de::Error::custom(
                "amount must be an integer number of minor units (e.g. 250000 for 2,500.00), as a number or a string of digits",
            )),
        }
    }
}

/// Basis points: 1/100 of a percent (250 = 2.5%).
pub const BPS_DENOMINATOR: i128 = 10_000;

/// The platform fee on `amount` at `bps` basis points, rounded half up to
/// the minor unit (a fee of 12.5 kobo is 13 kobo; 12.4 is 12). Computed in
/// i128, so no amount can overflow it.
pub fn fee_for(amount: i64, bps: u32) -> i64 {
    let exact = i128::from(amount) * i128::from(bps);
    let rounded = (exact + BPS_DENOMINATOR / 2) / BPS_DENOMINATOR;
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod money_tests {
    use super::*;

    #[test]
    fn fees_round_half_up_to_the_minor_unit() {
        assert_eq!(fee_for(10_000, 250), 250); // exactly 2.5%
        assert_eq!(fee_for(500, 250), 13); // 12.5 → 13
        assert_eq!(fee_for(499, 250), 12); // 12.475 → 12
        assert_eq!(fee_for(1, 250), 0); // 0.025 → 0
        assert_eq!(fee_for(20, 250), 1); // 0.5 → 1
        assert_eq!(fee_for(123_456_789, 0), 0);
        assert_eq!(fee_for(MAX_AMOUNT, 10_000), MAX_AMOUNT);
    }

    #[test]
    fn amounts_are_integers_or_digit_strings_never_floats() {
        let parse = |json: &str| serde_json::from_str::<MinorUnits>(json);
        assert_eq!(parse("250000").unwrap(), MinorUnits(250000));
        assert_eq!(parse("\"250000\"").unwrap(), MinorUnits(250000));
        assert!(parse("2500.50").is_err());
        assert!(parse("\"25.5\"").is_err());
        assert!(parse("\"-5\"").is_err());
        assert!(Money::new(0, Currency::Ngn).is_err());
        assert!(Money::new(-1, Currency::Ngn).is_err());
        assert!(Money::new(MAX_AMOUNT + 1, Currency::Ngn).is_err());
    }
}
