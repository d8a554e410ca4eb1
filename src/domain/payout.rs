//! Payout destinations: where a user's withdrawals go, and the rule that the
//! account must be theirs.
//!
//! A destination is a Nigerian bank account (NUBAN: a 10-digit account number
//! and a bank code) or a mobile-money wallet (an operator code, a number in
//! international format without `+`, and its country). The currency follows
//! from the destination: NGN for bank accounts, the country's currency for
//! mobile money. These are the destinations FinCra's documented local payouts
//! and account resolution cover.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::DomainError;
use super::money::Currency;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKind {
    BankAccount,
    MobileMoney,
}

impl DestinationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationKind::BankAccount => "bank_account",
            DestinationKind::MobileMoney => "mobile_money",
        }
    }

    pub fn parse(text: &str) -> Option<DestinationKind> {
        match text {
            "bank_account" => Some(DestinationKind::BankAccount),
            "mobile_money" => Some(DestinationKind::MobileMoney),
            _ => None,
        }
    }
}

/// A destination as a user asks to register it, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDestination {
    pub kind: DestinationKind,
    pub currency: Currency,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// Bank code (3–6 digits) or operator code (`MTN`, `AIRTEL`, …).
    pub institution_code: String,
    pub account_number: String,
    pub holder_name: String,
}

/// The mobile-money countries we pay out to, and their currencies.
const MOBILE_MONEY_COUNTRIES: [(&str, Currency); 3] =
    [("NG", Currency::Ngn), ("GH", Currency::Ghs), ("KE", Currency::Kes)];

impl NewDestination {
    pub fn bank_account(
        bank_code: &str,
        account_number: &str,
        holder_name: &str,
    ) -> Result<NewDestination, DomainError> {
        let bank_code = bank_code.trim();
        if !(3..=6).contains(&bank_code.len()) || !bank_code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::invalid("bank_code", "must be 3 to 6 digits (e.g. 058)"));
        }
        let account_number = account_number.trim();
        if account_number.len() != 10 || !account_number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::invalid(
                "account_number",
                "a bank account number (NUBAN) is exactly 10 digits",
            ));
        }
        Ok(NewDestination {
            kind: DestinationKind::BankAccount,
            currency: Currency::Ngn,
            country: "NG".into(),
            institution_code: bank_code.into(),
            account_number: account_number.into(),
            holder_name: holder(holder_name)?,
        })
    }

    pub fn mobile_money(
        operator_code: &str,
        number: &str,
        country: &str,
        holder_name: &str,
    ) -> Result<NewDestination, DomainError> {
        let operator_code = operator_code.trim().to_ascii_uppercase();
        if !(2..=20).contains(&operator_code.len())
            || !operator_code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(DomainError::invalid(
                "mobile_money_code",
                "must be the operator's code, 2 to 20 letters or digits (e.g. MTN, AIRTEL, SAFARICOM)",
            ));
        }
        let number = number.trim();
        if !(9..=15).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::invalid(
                "account_number",
                "a mobile-money number is 9 to 15 digits in international format without + (e.g. 233541234567)",
            ));
        }
        let country = country.trim().to_ascii_uppercase();
        let currency = MOBILE_MONEY_COUNTRIES
            .iter()
            .find(|(code, _)| *code == country)
            .map(|(_, currency)| *currency)
            .ok_or_else(|| DomainError::invalid("country", "mobile money is supported in NG, GH and KE"))?;
        Ok(NewDestination {
            kind: DestinationKind::MobileMoney,
            currency,
            country,
            institution_code: operator_code,
            account_number: number.into(),
            holder_name: holder(holder_name)?,
        })
    }
}

fn holder(name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.chars().count() < 2 || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "account_holder_name",
            "must be 2 to 100 characters with no control characters",
        ));
    }
    Ok(name.into())
}

/// The words of a name that identify a person: lowercase, letters only,
/// initials and punctuation dropped ("OKORO, Grace A." → okoro, grace).
fn name_words(name: &str) -> Vec<String> {
    name.split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() >= 2)
        .map(str::to_lowercase)
        .collect()
}

/// Whether the name a provider resolved for an account is the account
/// owner's name closely enough to pay it.
///
/// The rule: order, case, punctuation, initials and extra middle names do
/// not matter; at least two words must be the same (both names when either
/// has only one word). "OKORO GRACE ADAEZE" matches "Grace Okoro"; "Grace
/// Eze" does not match "Grace Okoro". Banks abbreviate and reorder names, so
/// an exact comparison would refuse most real accounts; one shared word
/// would accept a sibling's.
pub fn names_match(resolved: &str, owner: &str) -> bool {
    let resolved = name_words(resolved);
    let owner = name_words(owner);
    if resolved.is_empty() || owner.is_empty() {
        return false;
    }
    let shared = owner.iter().filter(|w| resolved.contains(w)).count();
    let needed = if resolved.len() == 1 || owner.len() == 1 { 1 } else { 2 };
    shared >= needed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bank_accounts_are_ten_digits_with_a_bank_code() {
        let ok = NewDestination::bank_account("058", "2345678901", "Chinwe Eze").unwrap();
        assert_eq!((ok.currency, ok.country.as_str()), (Currency::Ngn, "NG"));
        assert!(NewDestination::bank_account("058", "12345", "Chinwe Eze").is_err());
        assert!(NewDestination::bank_account("05a", "2345678901", "Chinwe Eze").is_err());
        assert!(NewDestination::bank_account("058", "2345678901", "x").is_err());
        assert!(NewDestination::bank_account("058", "2345678901", "bad\0name").is_err());
    }

    #[test]
    fn mobile_money_takes_its_currency_from_the_country() {
        let ok = NewDestination::mobile_money("airtel", "233541234567", "gh", "Ama Mensah").unwrap();
        assert_eq!(
            (ok.currency, ok.institution_code.as_str(), ok.country.as_str()),
            (Currency::Ghs, "AIRTEL", "GH")
        );
        assert!(NewDestination::mobile_money("MTN", "+233541234567", "GH", "Ama Mensah").is_err());
        assert!(NewDestination::mobile_money("MTN", "233541234567", "US", "Ama Mensah").is_err());
    }

    #[test]
    fn names_match_despite_order_case_and_initials_but_not_on_one_shared_word() {
        assert!(names_match("OKORO GRACE ADAEZE", "Grace Okoro"));
        assert!(names_match("Okoro, Grace A.", "grace okoro"));
        assert!(names_match("Test User", "Test User"));
        assert!(!names_match("Grace Eze", "Grace Okoro"));
        assert!(!names_match("John Doe", "Grace Okoro"));
        assert!(names_match("Madonna", "Madonna Ciccone"));
        assert!(!names_match("", "Grace Okoro"));
    }
}
