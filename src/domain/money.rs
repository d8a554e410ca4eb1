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
