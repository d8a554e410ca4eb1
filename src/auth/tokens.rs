//! Access tokens: HS256 JWTs signed with `SECRET_KEY`.
//!
//! Claims: `sub` (user id), `role`, `iat`, `exp`, `jti` (token id) and `ver`,
//! the user's token version. Changing the password or deactivating the user
//! bumps the version, so every token issued before stops working at once.
//! Only HS256 is accepted: `alg: none` or any other algorithm is refused.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

/// Clock skew tolerated on `exp` and `iat`, in seconds.
pub const LEEWAY_SECONDS: u64 = 1;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub ver: i64,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_seconds: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("token error: {0}")]
pub struct TokenError(String);

impl TokenKeys {
    pub fn new(secret: &SecretString, ttl_minutes: u32) -> TokenKeys {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        // Clocks across replicas agree to well within a second (NTP); a
        // longer grace would keep an expired token alive for nothing.
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        TokenKeys {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            ttl_seconds: i64::from(ttl_minutes) * 60,
        }
    }

    pub fn ttl_seconds(&self) -> i64 {
        self.ttl_seconds
    }

    pub fn issue(&self, user_id: &str, role: &str, version: i64) -> Result<String, TokenError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            sub: user_id.to_owned(),
            role: role.to_owned(),
            iat: now,
            exp: now + self.ttl_seconds,
            jti: uuid::Uuid::new_v4().to_string(),
            ver: version,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError(e.to_string()))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError(e.to_string()))?;
        // jsonwebtoken does not check `iat`: a token "issued" in the future
        // was not issued by us (or our clock was wrong when it was).
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if claims.iat > now + LEEWAY_SECONDS as i64 {
            return Err(TokenError("the token's iat is in the future".into()));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn keys() -> TokenKeys {
        TokenKeys::new(&SecretString::from("test-secret-key-of-enough-length-000"), 30)
    }

    #[test]
    fn a_token_round_trips_and_tampering_is_refused() {
        let keys = keys();
        let token = keys.issue("user-1", "client", 3).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.role.as_str(), claims.ver),
            ("user-1", "client", 3)
        );
        assert_eq!(claims.exp - claims.iat, 30 * 60);

        let parts: Vec<&str> = token.split('.').collect();
        // Changed payload, same signature.
        let forged =
            URL_SAFE_NO_PAD.encode(br#"{"sub":"user-2","role":"admin","iat":1,"exp":99999999999,"jti":"x","ver":3}"#);
        assert!(keys.verify(&format!("{}.{forged}.{}", parts[0], parts[2])).is_err());
        // alg: none, no signature.
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys.verify(&format!("{none}.{}.", parts[1])).is_err());
        // Signed with another key.
        let other = TokenKeys::new(&SecretString::from("another-secret-key-of-enough-length"), 30);
        assert!(keys.verify(&other.issue("user-1", "client", 3).unwrap()).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let keys = TokenKeys::new(&SecretString::from("test-secret-key-of-enough-length-000"), 1);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            sub: "u".into(),
            role: "client".into(),
            iat: now - 120,
            exp: now - 60,
            jti: "j".into(),
            ver: 0,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert!(keys.verify(&token).is_err());
    }

    #[test]
    fn the_leeway_is_at_most_a_second_and_future_tokens_are_refused() {
        let keys = keys();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let token = |iat: i64, exp: i64| {
            let claims = Claims {
                sub: "u".into(),
                role: "client".into(),
                iat,
                exp,
                jti: "j".into(),
                ver: 0,
            };
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap()
        };
        assert!(keys.verify(&token(now - 60, now + 60)).is_ok());
        assert!(keys.verify(&token(now - 60, now - 3)).is_err(), "expired 3 s ago");
        assert!(
            keys.verify(&token(now + 60, now + 120)).is_err(),
            "issued in the future"
        );
        assert!(
            keys.verify(&token(now + 1, now + 120)).is_ok(),
            "a second of clock skew"
        );
    }
}
