//! Accounts: who may act, as what. Values here are valid by construction.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::DomainError;

/// A normalised (trimmed, lowercased) email address of plausible shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, DomainError> {
        let email = raw.trim().to_lowercase();
        let invalid = || DomainError::invalid("email", "must be an email address such as ada@example.com");
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !domain.contains('@');
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(invalid());
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The password policy, stated once: at least 10 characters, at most 128
/// (Argon2 work is bounded), and not the email or its local part.
pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 128;

pub fn check_password_policy(password: &str, email: &Email) -> Result<(), DomainError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(DomainError::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters long"),
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(DomainError::invalid(
            "password",
            format!("must be at most {MAX_PASSWORD_CHARS} characters long"),
        ));
    }
    let lowered = password.to_lowercase();
    let local = email.as_str().split('@').next().unwrap_or_default();
    if lowered == email.as_str() || lowered == local {
        return Err(DomainError::invalid("password", "must not be your email address"));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A buyer: creates and funds projects.
    Client,
    /// A seller: accepts projects and delivers milestones.
    Freelancer,
    /// Reviews KYC and resolves disputes; created from the CLI only.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Freelancer => "freelancer",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Role, DomainError> {
        match s {
            "client" => Ok(Role::Client),
            "freelancer" => Ok(Role::Freelancer),
            "admin" => Ok(Role::Admin),
            _ => Err(DomainError::invalid("role", "must be client or freelancer")),
        }
    }
}

/// A trimmed, non-empty text of bounded length (names, bios, reasons).
pub fn bounded_text(field: &'static str, raw: &str, max_chars: usize) -> Result<String, DomainError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if text.chars().count() > max_chars {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(DomainError::invalid(field, "must not contain control characters"));
    }
    Ok(text.to_owned())
}

/// A phone number in international form: `+` and 7 to 15 digits (E.164).
pub fn parse_phone(raw: &str) -> Result<String, DomainError> {
    let compact: String = raw.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')')).collect();
    let digits = compact.strip_prefix('+').unwrap_or("");
    if (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(compact)
    } else {
        Err(DomainError::invalid(
            "phone_number",
            "must be in international form, e.g. +2348012345678",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ada@Example.COM ").unwrap().as_str(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@.com",
            "ada@example..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_password_policy_names_the_rule_broken() {
        let email = Email::parse("ada@example.com").unwrap();
        assert!(
            check_password_policy("short", &email)
                .unwrap_err()
                .to_string()
                .contains("at least 10")
        );
        assert!(
            check_password_policy("ADA@example.com", &email)
                .unwrap_err()
                .to_string()
                .contains("email")
        );
        assert!(check_password_policy(&"x".repeat(129), &email).is_err());
        assert!(check_password_policy("correct horse battery", &email).is_ok());
    }

    #[test]
    fn phones_must_be_international() {
        assert_eq!(parse_phone("+234 801 234 5678").unwrap(), "+2348012345678");
        assert!(parse_phone("08012345678").is_err());
    }
}

/// Failed password checks allowed before a lockout starts.
pub const FREE_FAILURES: i64 = 5;
/// The first lockout; each further failure doubles it, up to [`MAX_LOCKOUT`].
pub const FIRST_LOCKOUT: std::time::Duration = std::time::Duration::from_secs(30);
pub const MAX_LOCKOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// How long to refuse further attempts after `failures` consecutive failed
/// password checks: nothing for the first [`FREE_FAILURES`], then 30 s,
/// 1 min, 2 min … capped at 15 min. With the per-IP limit this leaves an
/// attacker on one account about a hundred guesses a day, not 86,000.
pub fn lockout_after(failures: i64) -> Option<std::time::Duration> {
    if failures < FREE_FAILURES {
        return None;
    }
    let doublings = u32::try_from(failures - FREE_FAILURES).unwrap_or(u32::MAX).min(16);
    Some(FIRST_LOCKOUT.saturating_mul(1 << doublings).min(MAX_LOCKOUT))
}

#[cfg(test)]
mod lockout_tests {
    use super::*;

    #[test]
    fn lockouts_start_after_five_failures_and_double_to_a_cap() {
        assert_eq!(lockout_after(4), None);
        assert_eq!(lockout_after(5), Some(std::time::Duration::from_secs(30)));
        assert_eq!(lockout_after(6), Some(std::time::Duration::from_secs(60)));
        assert_eq!(lockout_after(9), Some(std::time::Duration::from_secs(480)));
        assert_eq!(lockout_after(10), Some(MAX_LOCKOUT));
        assert_eq!(lockout_after(i64::MAX), Some(MAX_LOCKOUT));
    }
}
