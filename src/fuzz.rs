//! Property-based fuzzing of every parser that sees untrusted bytes: money
//! amounts, request ids, webhook bodies and signatures, KYC documents and ID
//! numbers, emails and phones, pagination. Each runs a few hundred random
//! inputs per `cargo test` (proptest's default; `PROPTEST_CASES=100000
//! cargo test --lib fuzz` for a longer run) and asserts the parser neither
//! panics nor accepts what it must refuse.

use proptest::prelude::*;

use crate::domain::account::{Email, parse_phone};
use crate::domain::kyc::{DocumentType, IdNumber};
use crate::domain::money::{Currency, MAX_AMOUNT, MinorUnits, Money};
use crate::gateway::{json_minor_units, minor_units};
use crate::telemetry::request_id::RequestId;

/// JSON values an amount field may receive: integers of every size,
/// decimals, digit strings, junk strings, null, objects, arrays.
fn amount_json() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        "[0-9]{1,25}".prop_map(|d| format!("\"{d}\"")),
        any::<String>().prop_map(|s| serde_json::Value::String(s).to_string()),
        Just("null".to_owned()),
        Just("{}".to_owned()),
        Just("[1]".to_owned()),
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn amounts_from_any_json_are_integers_or_refused(json in amount_json()) {
        if let Ok(MinorUnits(n)) = serde_json::from_str::<MinorUnits>(&json) {
            // Whatever parsed is an integer; Money bounds it.
            let bounded = Money::new(n, Currency::Ngn).is_ok();
            prop_assert_eq!(bounded, (1..=MAX_AMOUNT).contains(&n));
        }
    }

    #[test]
    fn amounts_as_strings_of_digits_parse_exactly(n in 0..=i64::MAX) {
        let parsed: MinorUnits = serde_json::from_str(&format!("\"{n}\"")).unwrap();
        prop_assert_eq!(parsed.0, n);
    }

    #[test]
    fn provider_amounts_convert_exactly_or_not_at_all(text in "[0-9]{0,20}(\\.[0-9]{0,4})?", junk in any::<String>()) {
        if let Some(minor) = minor_units(&text, Currency::Ngn) {
            prop_assert!(minor >= 0);
            prop_assert_eq!(crate::gateway::major_units(minor, Currency::Ngn).replace('.', "").trim_start_matches('0').to_owned(),
                minor.to_string().trim_start_matches('0').to_owned());
        }
        let _ = minor_units(&junk, Currency::Jpy);
        let _ = json_minor_units(&serde_json::Value::String(junk), Currency::Usd);
    }

    #[test]
    fn request_ids_are_kept_only_when_safe(raw in any::<String>()) {
        if let Some(id) = RequestId::parse(&raw) {
            prop_assert!(id.as_str().len() <= 128);
            prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)));
        }
    }

    #[test]
    fn webhook_signatures_never_panic_and_only_the_secret_verifies(body in any::<Vec<u8>>(), signature in any::<String>()) {
        let _ = crate::gateway::webhook::verify(b"secret", Some(&signature), &body);
        let good = crate::gateway::webhook::sign(b"secret", &body);
        prop_assert!(crate::gateway::webhook::verify(b"secret", Some(&good), &body).is_ok());
        prop_assert!(crate::gateway::webhook::verify(b"other", Some(&good), &body).is_err());
    }

    #[test]
    fn webhook_bodies_parse_or_are_refused(body in any::<Vec<u8>>()) {
        let _ = crate::http::extract::refuse_nul(&body);
        let _ = serde_json::from_slice::<crate::http::webhooks::PaymentEvent>(&body);
    }

    #[test]
    fn documents_and_id_numbers_never_panic(bytes in any::<Vec<u8>>(), id in any::<String>()) {
        let _ = DocumentType::sniff(&bytes);
        if let Ok(parsed) = IdNumber::parse(&id) {
            prop_assert!(parsed.last_four().chars().count() <= 4);
        }
    }

    #[test]
    fn emails_and_phones_parse_or_are_refused(email in any::<String>(), phone in any::<String>()) {
        if let Ok(parsed) = Email::parse(&email) {
            prop_assert!(parsed.as_str().contains('@'));
            prop_assert!(!parsed.as_str().contains(char::is_whitespace));
        }
        let _ = parse_phone(&phone);
    }

    #[test]
    fn pages_are_bounded_or_refused(page in any::<Option<i64>>(), page_size in any::<Option<i64>>()) {
        let params = crate::http::extract::PageParams { page, page_size };
        if let Ok((page, page_size, limit, offset)) = params.resolve() {
            prop_assert!((1..=100).contains(&page_size));
            prop_assert!(page >= 1);
            prop_assert_eq!(limit, i64::from(page_size));
            prop_assert!(offset >= 0);
        }
    }
}
