//! Verifying FinCra webhooks as FinCra signs them: header `signature`, the
//! lowercase hex HMAC-SHA512 of the JSON payload, keyed with the webhook
//! secret (`FINCRA_WEBHOOK_SECRET`). There is no timestamp, so a signature
//! proves origin, not freshness: a webhook is only a hint, and money moves on
//! the provider's answer to our own lookup, never on the payload.
//!
//! Which bytes FinCra hashes is not pinned down by its docs (its Node
//! example signs `JSON.stringify(payload)`, its Python example
//! `json.dumps(payload, separators=(',', ':'))`, which also escapes non-ASCII
//! characters). So the signature is checked over, in order: the raw body as
//! received; the body with insignificant whitespace removed (key order and
//! string contents kept); and that compact form with non-ASCII characters
//! escaped as `\uXXXX`. Each comparison is constant-time.

use aws_lc_rs::hmac;

/// The header FinCra puts the signature in.
pub const SIGNATURE_HEADER: &str = "signature";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the webhook is not signed (the `signature` header is required)")]
    Missing,
    #[error("the webhook signature does not match")]
    Invalid,
}

/// The hex signature of `body` (what FinCra sends; tests sign with it).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA512, secret);
    hex(hmac::sign(&key, body).as_ref())
}

pub fn verify(secret: &[u8], signature: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
    let signature = signature
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(SignatureError::Missing)?;
    let signature = unhex(&signature.to_ascii_lowercase()).ok_or(SignatureError::Invalid)?;
    let key = hmac::Key::new(hmac::HMAC_SHA512, secret);
    if hmac::verify(&key, body, &signature).is_ok() {
        return Ok(());
    }
    let Some(compact) = compact_json(body) else {
        return Err(SignatureError::Invalid);
    };
    if hmac::verify(&key, compact.as_bytes(), &signature).is_ok() {
        return Ok(());
    }
    let escaped = escape_non_ascii(&compact);
    hmac::verify(&key, escaped.as_bytes(), &signature).map_err(|_| SignatureError::Invalid)
}

/// The JSON text with whitespace outside strings removed; `None` if the body
/// is not UTF-8.
fn compact_json(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    Some(out)
}

/// Python's `ensure_ascii`: every non-ASCII character as `\uXXXX` (UTF-16).
fn escape_non_ascii(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0_u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_body_verifies_and_tampering_is_refused() {
        let body = br#"{"event":"charge.successful","data":{"reference":"dep_1"}}"#;
        let signature = sign(b"secret", body);
        assert_eq!(verify(b"secret", Some(&signature), body), Ok(()));
        assert_eq!(
            verify(b"secret", Some(&signature.to_uppercase()), body),
            Ok(()),
            "hex case does not matter"
        );
        assert_eq!(verify(b"other", Some(&signature), body), Err(SignatureError::Invalid));
        assert_eq!(
            verify(
                b"secret",
                Some(&signature),
                br#"{"event":"charge.successful","data":{"reference":"dep_2"}}"#
            ),
            Err(SignatureError::Invalid)
        );
        assert_eq!(verify(b"secret", None, body), Err(SignatureError::Missing));
        assert_eq!(verify(b"secret", Some("zz"), body), Err(SignatureError::Invalid));
    }

    #[test]
    fn a_pretty_printed_body_verifies_against_a_compact_signature() {
        let compact = r#"{"event":"payout.successful","data":{"customerReference":"wd_1","note":"a b"}}"#;
        let signature = sign(b"secret", compact.as_bytes());
        let pretty = "{\n  \"event\": \"payout.successful\",\n  \"data\": { \"customerReference\": \"wd_1\", \"note\": \"a b\" }\n}";
        assert_eq!(verify(b"secret", Some(&signature), pretty.as_bytes()), Ok(()));
        // Whitespace inside a string is content: changing it breaks the signature.
        let altered = pretty.replace("a b", "a  b");
        assert_eq!(
            verify(b"secret", Some(&signature), altered.as_bytes()),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn a_python_style_ascii_signature_verifies_a_utf8_body() {
        let body = r#"{"event":"charge.successful","data":{"customer":{"name":"Adaèze 😀"}}}"#;
        let python = r#"{"event":"charge.successful","data":{"customer":{"name":"Ada\u00e8ze \ud83d\ude00"}}}"#;
        let signature = sign(b"secret", python.as_bytes());
        assert_eq!(verify(b"secret", Some(&signature), body.as_bytes()), Ok(()));
    }
}
