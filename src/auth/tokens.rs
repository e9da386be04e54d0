//! Access tokens (short-lived HS256 JWTs with `exp` and `jti`) and opaque tokens (refresh,
//! password reset) that are stored only as SHA-256 hashes.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Revocations;
use crate::domain::{Id, now_ms};

/// Claims of an access token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    /// User id.
    pub sub: String,
    /// Session (refresh-token family) id.
    pub sid: String,
    /// Token id, the revocation key.
    pub jti: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
}

impl AccessClaims {
    /// The user.
    pub fn user_id(&self) -> Option<Id> {
        self.sub.parse().ok()
    }

    /// The session.
    pub fn session_id(&self) -> Option<Id> {
        self.sid.parse().ok()
    }
}

/// Why a token was refused. The sockets map these to close codes, REST to 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No token given.
    #[error("missing access token")]
    Missing,
    /// Not a token we issued (bad signature, garbage).
    #[error("malformed or invalid access token")]
    Invalid,
    /// Past its `exp`.
    #[error("access token expired")]
    Expired,
    /// Logged out, or the session was revoked.
    #[error("access token revoked")]
    Revoked,
}

/// Token keys and lifetimes.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Access token lifetime in seconds.
    pub access_ttl: i64,
    /// Refresh token lifetime in seconds.
    pub refresh_ttl: i64,
    /// Keyed hash of short codes (e-mail verification), derived from the secret.
    codes: Hmac<Sha256>,
}

impl Auth {
    /// Keys from `secret`.
    pub fn new(secret: &[u8], access_ttl: i64, refresh_ttl: i64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
            refresh_ttl,
            codes: derive_mac(secret, b"chorus email codes v1"),
        }
    }

    /// The stored form of a short code sent to `user`: HMAC-SHA256 under a key derived from
    /// the server's secret, so a copy of the database alone cannot try the million codes.
    pub fn hash_code(&self, user: Id, code: &str) -> String {
        let mut mac = self.codes.clone();
        mac.update(format!("{user}:{code}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Issues an access token for `user` in session `sid`.
    pub fn issue_access(&self, user: Id, sid: Id) -> anyhow::Result<(String, AccessClaims)> {
        let now = now_ms() / 1000;
        let claims = AccessClaims {
            sub: user.to_string(),
            sid: sid.to_string(),
            jti: random_token(16),
            iat: now,
            exp: now + self.access_ttl,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Checks signature and expiry only.
    pub fn decode_access(&self, token: &str) -> Result<AccessClaims, AuthFailure> {
        match jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation) {
            Ok(data) if data.claims.user_id().is_some() && data.claims.session_id().is_some() => Ok(data.claims),
            Ok(_) => Err(AuthFailure::Invalid),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(AuthFailure::Expired),
            Err(_) => Err(AuthFailure::Invalid),
        }
    }

    /// The full check used by every door: signature, expiry, then revocation.
    pub async fn verify_access(&self, revocations: &Revocations, token: &str) -> Result<AccessClaims, AuthFailure> {
        let claims = self.decode_access(token)?;
        match revocations.is_revoked(&claims).await {
            Ok(false) => Ok(claims),
            Ok(true) => Err(AuthFailure::Revoked),
            Err(e) => {
                // Fail closed: a token we cannot check is not accepted.
                tracing::warn!(error = %e, "revocation check failed");
                Err(AuthFailure::Revoked)
            }
        }
    }
}

/// An HMAC key derived from `secret` for one purpose.
fn derive_mac(secret: &[u8], purpose: &[u8]) -> Hmac<Sha256> {
    let mut derive = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    derive.update(purpose);
    Hmac::<Sha256>::new_from_slice(&derive.finalize().into_bytes()).expect("HMAC takes any key length")
}

/// A random 6-digit code, zero-padded.
pub fn random_code() -> String {
    use rand::Rng;
    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32))
}

/// `n` random bytes, base64url: for opaque tokens and `jti`s.
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256 of an opaque token, hex. Tokens carry 256 bits of entropy, so a fast hash is
/// enough; lookups by hash are constant-time in effect (the comparison happens in the
/// index on a value the attacker cannot steer).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The JWT secret: the configured one, or one generated once and kept in `data_dir`.
pub fn load_or_create_secret(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = configured {
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt_secret");
    let s = kept_secret(&path, "JWT secret", || Ok(random_token(48)))?;
    let s = s.trim();
    anyhow::ensure!(s.len() >= 32, "{} is too short; delete it to regenerate", path.display());
    Ok(s.as_bytes().to_vec())
}

/// A secret kept in a file of the data directory: read when it exists, otherwise made by
/// `make` and written readable by its owner only. The one way every generated secret of a
/// single node is kept (the JWT secret, the VAPID key).
pub(crate) fn kept_secret(
    path: &Path,
    what: &str,
    make: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    if let Ok(s) = std::fs::read_to_string(path) {
        return Ok(s);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let secret = make()?;
    write_private(path, &secret)?;
    tracing::info!(path = %path.display(), "generated a new {what}");
    Ok(secret)
}

/// Writes a secret file readable by its owner only (created, never overwritten).
#[cfg(unix)]
fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(content.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    std::fs::write(path, content)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_tokens_round_trip_and_reject_tampering() {
        let auth = Auth::new(&[7u8; 32], 900, 3600);
        let (token, claims) = auth.issue_access(Id(42), Id(9)).unwrap();
        let back = auth.decode_access(&token).unwrap();
        assert_eq!(back.sub, "42");
        assert_eq!(back.jti, claims.jti);
        let other = Auth::new(&[8u8; 32], 900, 3600);
        assert_eq!(other.decode_access(&token).unwrap_err(), AuthFailure::Invalid);
        assert_eq!(auth.decode_access("garbage").unwrap_err(), AuthFailure::Invalid);
    }

    #[test]
    fn expired_tokens_are_reported_as_expired() {
        let auth = Auth::new(&[7u8; 32], -10, 3600);
        let (token, _) = auth.issue_access(Id(1), Id(2)).unwrap();
        assert_eq!(auth.decode_access(&token).unwrap_err(), AuthFailure::Expired);
    }

    #[test]
    fn secrets_are_generated_once() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_secret(None, dir.path()).unwrap();
        let b = load_or_create_secret(None, dir.path()).unwrap();
        assert_eq!(a, b);
        assert!(a.len() >= 32);
    }
}
