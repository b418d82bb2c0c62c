//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): an
//! HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{raw body}`, keyed with the base64 bytes
//! of a `whsec_` secret, sent as space-separated `v1,<base64>` entries in `webhook-signature`.
//! Any entry matching any configured secret passes, so senders and receivers can rotate
//! secrets without downtime.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent or empty.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not an integer.
    #[error("webhook-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    /// The timestamp is older than the tolerance allows (seconds old, tolerance).
    #[error("webhook-timestamp is {0} s old: too old (tolerance {1} s)")]
    TooOld(i64, i64),
    /// The timestamp is further in the future than the tolerance allows (seconds ahead,
    /// tolerance).
    #[error("webhook-timestamp is {0} s ahead of this server's clock: too new (tolerance {1} s)")]
    TooNew(i64, i64),
    /// No `v1` signature matches.
    #[error("no valid v1 signature in webhook-signature")]
    NoMatch,
}

/// A configuration problem (reported as a server error, never shown to callers in detail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook secret {index} is not `whsec_` followed by base64")]
pub struct SecretError {
    /// Position of the bad secret in the list.
    pub index: usize,
}

/// Decoded signing keys.
pub struct Secrets(Vec<Vec<u8>>);

impl Secrets {
    /// Parses whitespace- or comma-separated secrets (`whsec_` + base64; the prefix is
    /// optional, as in the reference libraries).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let keys = text
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .enumerate()
            .map(|(index, s)| {
                let encoded = s.strip_prefix("whsec_").unwrap_or(s);
                STANDARD
                    .decode(encoded)
                    .ok()
                    .filter(|k| !k.is_empty())
                    .ok_or(SecretError { index })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SecretError { index: 0 });
        }
        Ok(Self(keys))
    }

    /// Checks a delivery: headers, timestamp within `tolerance` seconds of `now`, and a
    /// signature of the raw `body`.
    pub fn verify(
        &self,
        id: Option<&str>,
        timestamp: Option<&str>,
        signatures: Option<&str>,
        body: &[u8],
        now: i64,
        tolerance: i64,
    ) -> Result<(), VerifyError> {
        let id = present(id, "webhook-id")?;
        let timestamp = present(timestamp, "webhook-timestamp")?;
        let signatures = present(signatures, "webhook-signature")?;
        let seconds: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| VerifyError::BadTimestamp)?;
        let age = now.saturating_sub(seconds);
        if age > tolerance {
            return Err(VerifyError::TooOld(age, tolerance));
        }
        if -age > tolerance {
            return Err(VerifyError::TooNew(-age, tolerance));
        }
        let candidates: Vec<Vec<u8>> = signatures
            .split_whitespace()
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|s| STANDARD.decode(s).ok())
            .collect();
        for key in &self.0 {
            for candidate in &candidates {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
                mac.update(id.as_bytes());
                mac.update(b".");
                mac.update(timestamp.as_bytes());
                mac.update(b".");
                mac.update(body);
                // Constant-time comparison.
                if mac.verify_slice(candidate).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(VerifyError::NoMatch)
    }
}

fn present<'a>(value: Option<&'a str>, name: &'static str) -> Result<&'a str, VerifyError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or(VerifyError::MissingHeader(name))
}

/// The `v1,<base64>` signature of a delivery (for senders and tests).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, SecretError> {
    let key = &Secrets::parse(secret)?.0[0];
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of the Standard Webhooks reference libraries' test suites.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn verify(secrets: &str, signature: &str, body: &[u8], now: i64) -> Result<(), VerifyError> {
        Secrets::parse(secrets).unwrap().verify(
            Some(ID),
            Some(&TIMESTAMP.to_string()),
            Some(signature),
            body,
            now,
            300,
        )
    }

    #[test]
    fn matches_the_reference_signature() {
        assert_eq!(sign(SECRET, ID, TIMESTAMP, BODY).unwrap(), EXPECTED);
        assert_eq!(verify(SECRET, EXPECTED, BODY, TIMESTAMP), Ok(()));
    }

    #[test]
    fn refuses_tampering_wrong_secrets_and_stale_timestamps() {
        assert_eq!(
            verify(SECRET, EXPECTED, br#"{"test": 2432232315}"#, TIMESTAMP),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAA", EXPECTED, BODY, TIMESTAMP),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(SECRET, EXPECTED, BODY, TIMESTAMP + 301),
            Err(VerifyError::TooOld(301, 300))
        );
        assert_eq!(
            verify(SECRET, EXPECTED, BODY, TIMESTAMP - 301),
            Err(VerifyError::TooNew(301, 300))
        );
        assert_eq!(verify(SECRET, EXPECTED, BODY, TIMESTAMP + 300), Ok(()));
        // Other versions are ignored; a v1 entry anywhere in the list counts.
        assert_eq!(
            verify(SECRET, &EXPECTED.replace("v1,", "v1a,"), BODY, TIMESTAMP),
            Err(VerifyError::NoMatch)
        );
        let several = format!("v1,Ym9ndXM= {EXPECTED} v2,abc");
        assert_eq!(verify(SECRET, &several, BODY, TIMESTAMP), Ok(()));
    }

    #[test]
    fn any_configured_secret_may_sign_during_rotation() {
        let rotated = format!("whsec_bmV3LXNlY3JldC1rZXk= {SECRET}");
        assert_eq!(verify(&rotated, EXPECTED, BODY, TIMESTAMP), Ok(()));
        let err = Secrets::parse("whsec_!!!").err().unwrap();
        assert_eq!(err.index, 0);
        assert!(Secrets::parse("  ").is_err());
        let missing = Secrets::parse(SECRET).unwrap().verify(
            Some(ID),
            None,
            Some(EXPECTED),
            BODY,
            TIMESTAMP,
            300,
        );
        assert_eq!(
            missing,
            Err(VerifyError::MissingHeader("webhook-timestamp"))
        );
    }
}
