//! Verifying payment webhooks: HMAC-SHA512 over `"{timestamp}.{raw body}"`
//! with `FINCRA_WEBHOOK_SECRET`, hex in `x-fincra-signature`, the Unix time
//! in `x-fincra-timestamp`. Signing the timestamp with the body (Stripe's
//! scheme) makes a captured webhook useless after the tolerance window;
//! FinCra's own scheme signs the body alone and cannot reject a stale one.
//! The comparison is constant-time.

use aws_lc_rs::hmac;

/// How old (or how far in the future) a signed webhook may be.
pub const TOLERANCE_SECONDS: i64 = 300;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the webhook is not signed (x-fincra-signature and x-fincra-timestamp are required)")]
    Missing,
    #[error("the webhook signature does not match")]
    Invalid,
    #[error("the webhook is stale or from the future (more than {TOLERANCE_SECONDS} s off)")]
    Stale,
}

pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA512, secret);
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    hex(hmac::sign(&key, &message).as_ref())
}

pub fn verify(
    secret: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let (Some(signature), Some(timestamp)) = (signature, timestamp) else {
        return Err(SignatureError::Missing);
    };
    let timestamp: i64 = timestamp.trim().parse().map_err(|_| SignatureError::Invalid)?;
    let signature = unhex(signature.trim()).ok_or(SignatureError::Invalid)?;
    let key = hmac::Key::new(hmac::HMAC_SHA512, secret);
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    hmac::verify(&key, &message, &signature).map_err(|_| SignatureError::Invalid)?;
    if (now - timestamp).abs() > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
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
    fn signatures_verify_and_tampering_or_age_is_refused() {
        let body = br#"{"id":"evt_1"}"#;
        let signature = sign(b"secret", 1_000, body);
        assert_eq!(verify(b"secret", Some(&signature), Some("1000"), body, 1_100), Ok(()));
        assert_eq!(
            verify(b"other", Some(&signature), Some("1000"), body, 1_100),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(b"secret", Some(&signature), Some("1000"), br#"{"id":"evt_2"}"#, 1_100),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(b"secret", Some(&signature), Some("1001"), body, 1_100),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(b"secret", Some(&signature), Some("1000"), body, 1_000 + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(b"secret", None, Some("1000"), body, 1_000),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(b"secret", Some("zz"), Some("1000"), body, 1_000),
            Err(SignatureError::Invalid)
        );
    }
}
