//! Identity verification: what a submission holds and how it may change.
//!
//! `pending → approved` or `pending → rejected`, once, by an admin. A
//! rejected submission may be resubmitted (a new pending submission that
//! points back at it); an approved one is final.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::DomainError;

/// Largest document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KycKind {
    /// A person.
    Kyc,
    /// A business.
    Kyb,
}

impl KycKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KycKind::Kyc => "kyc",
            KycKind::Kyb => "kyb",
        }
    }
}

impl FromStr for KycKind {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<KycKind, DomainError> {
        match s.trim() {
            "kyc" => Ok(KycKind::Kyc),
            "kyb" => Ok(KycKind::Kyb),
            _ => Err(DomainError::invalid(
                "type",
                "must be kyc (a person) or kyb (a business)",
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KycStatus {
    Pending,
    Approved,
    Rejected,
}

impl KycStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KycStatus::Pending => "pending",
            KycStatus::Approved => "approved",
            KycStatus::Rejected => "rejected",
        }
    }
}

impl FromStr for KycStatus {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<KycStatus, DomainError> {
        match s {
            "pending" => Ok(KycStatus::Pending),
            "approved" => Ok(KycStatus::Approved),
            "rejected" => Ok(KycStatus::Rejected),
            _ => Err(DomainError::invalid("status", "must be pending, approved or rejected")),
        }
    }
}

/// An admin's decision on a pending submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject { reason: String },
}

impl KycStatus {
    /// The status after `decision`; only a pending submission can be decided.
    pub fn decide(self, decision: &Decision) -> Result<KycStatus, DomainError> {
        if self != KycStatus::Pending {
            return Err(DomainError::conflict(format!(
                "this submission was already {}; a decision is final",
                self.as_str()
            )));
        }
        Ok(match decision {
            Decision::Approve => KycStatus::Approved,
            Decision::Reject { .. } => KycStatus::Rejected,
        })
    }

    /// Only a rejected submission may be resubmitted.
    pub fn check_resubmittable(self) -> Result<(), DomainError> {
        match self {
            KycStatus::Rejected => Ok(()),
            other => Err(DomainError::conflict(format!(
                "only a rejected submission can be resubmitted; this one is {}",
                other.as_str()
            ))),
        }
    }
}

/// A national ID or passport number: 5 to 20 letters and digits (spaces and
/// dashes dropped), kept in upper case. Never logged; stored encrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct IdNumber(String);

impl std::fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdNumber(***{})", self.last_four())
    }
}

impl IdNumber {
    pub fn parse(raw: &str) -> Result<IdNumber, DomainError> {
        let compact: String = raw
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .collect::<String>()
            .to_uppercase();
        if (5..=20).contains(&compact.len()) && compact.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(IdNumber(compact))
        } else {
            Err(DomainError::invalid(
                "nin_or_passport",
                "must be 5 to 20 letters and digits (a national ID or passport number)",
            ))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn last_four(&self) -> &str {
        &self.0[self.0.len().saturating_sub(4)..]
    }
}

/// The kinds of document accepted, recognised by their first bytes, never by
/// a file name or a client-declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentType {
    Png,
    Jpeg,
    Pdf,
}

impl DocumentType {
    pub fn sniff(bytes: &[u8]) -> Option<DocumentType> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(DocumentType::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(DocumentType::Jpeg)
        } else if bytes.starts_with(b"%PDF-") {
            Some(DocumentType::Pdf)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            DocumentType::Png => "image/png",
            DocumentType::Jpeg => "image/jpeg",
            DocumentType::Pdf => "application/pdf",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_is_final() {
        let approved = KycStatus::Pending.decide(&Decision::Approve).unwrap();
        assert_eq!(approved, KycStatus::Approved);
        assert!(approved.decide(&Decision::Reject { reason: "x".into() }).is_err());
        assert!(KycStatus::Rejected.decide(&Decision::Approve).is_err());
    }

    #[test]
    fn only_rejected_submissions_can_be_resubmitted() {
        assert!(KycStatus::Rejected.check_resubmittable().is_ok());
        assert!(KycStatus::Pending.check_resubmittable().is_err());
        assert!(KycStatus::Approved.check_resubmittable().is_err());
    }

    #[test]
    fn id_numbers_are_normalised_and_shown_only_by_their_last_four() {
        let id = IdNumber::parse("a12-345 678 90").unwrap();
        assert_eq!(id.expose(), "A1234567890");
        assert_eq!(id.last_four(), "7890");
        assert!(!format!("{id:?}").contains("A123456"));
        assert!(IdNumber::parse("12").is_err());
        assert!(IdNumber::parse("12345678<script>").is_err());
    }

    #[test]
    fn documents_are_recognised_by_their_magic_bytes() {
        assert_eq!(DocumentType::sniff(b"\x89PNG\r\n\x1a\nrest"), Some(DocumentType::Png));
        assert_eq!(DocumentType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(DocumentType::Jpeg));
        assert_eq!(DocumentType::sniff(b"%PDF-1.7"), Some(DocumentType::Pdf));
        assert_eq!(DocumentType::sniff(b"GIF89a"), None);
        assert_eq!(DocumentType::sniff(b"MZ\x90\x00"), None);
    }
}
