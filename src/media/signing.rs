//! Signed, expiring URLs for local media that not everyone may see.
//!
//! A media item's audience is decided by the policy (`services::access::visible_media`);
//! this module only turns "this viewer may see it now" into a URL that works for a while
//! and then stops, so that a URL copied out of a conversation or a private account's post
//! does not keep working for whoever it reaches.
//!
//! `/files/{key}?exp={unix seconds}&sig={hex}` where `sig` is HMAC-SHA256 over
//! `"{key}\n{exp}"` with a key derived from the server's secret (the JWT secret, so every
//! instance of a cluster signs alike). Expiries are rounded up to [`BUCKET_SECS`], so the
//! same item viewed repeatedly gets the same URL for a while and browsers can cache it.
//! A URL is valid for between `ttl` and `ttl + BUCKET_SECS` seconds.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Expiries are multiples of this, so URLs are stable (cacheable) for this long.
pub const BUCKET_SECS: u64 = 300;

/// Signs and checks media URLs.
#[derive(Clone)]
pub struct UrlSigner {
    mac: HmacSha256,
    ttl_secs: u64,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner").field("ttl_secs", &self.ttl_secs).finish_non_exhaustive()
    }
}

impl UrlSigner {
    /// A signer whose URLs live `ttl_secs` (at least [`BUCKET_SECS`]). The HMAC key is
    /// derived from `secret` for this one purpose, so a media signature can never pass for
    /// anything else signed with the same secret.
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        let mut derive = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
        derive.update(b"chorus media url signing v1");
        let key = derive.finalize().into_bytes();
        Self {
            mac: HmacSha256::new_from_slice(&key).expect("HMAC takes any key length"),
            ttl_secs: ttl_secs.max(BUCKET_SECS),
        }
    }

    /// How long a fresh URL stays valid at least.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// The expiry of a URL made at `now` (Unix seconds): `ttl` later, rounded up to
    /// [`BUCKET_SECS`]. Cloudinary's tokens use the same.
    pub fn expiry(&self, now: u64) -> u64 {
        (now + self.ttl_secs).div_ceil(BUCKET_SECS) * BUCKET_SECS
    }

    /// `(exp, sig)` for `key`, signed at `now` (Unix seconds).
    pub fn sign(&self, key: &str, now: u64) -> (u64, String) {
        let exp = self.expiry(now);
        (exp, hex::encode(self.mac_of(key, exp).finalize().into_bytes()))
    }

    /// `url` (the item's unsigned URL path, `/files/{key}`) with its signature appended.
    pub fn signed_url(&self, url: &str, key: &str, now: u64) -> String {
        let (exp, sig) = self.sign(key, now);
        format!("{url}?exp={exp}&sig={sig}")
    }

    /// Whether `sig` signs `key` until `exp`, and `exp` is not past at `now`. Compared in
    /// constant time.
    pub fn verify(&self, key: &str, exp: u64, sig: &str, now: u64) -> bool {
        if exp < now {
            return false;
        }
        let Ok(sig) = hex::decode(sig) else { return false };
        self.mac_of(key, exp).verify_slice(&sig).is_ok()
    }

    fn mac_of(&self, key: &str, exp: u64) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(exp.to_string().as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_until_they_expire() {
        let s = UrlSigner::new(b"a secret of some length, 32 bytes+", 3600);
        let (exp, sig) = s.sign("7-tok/feed.jpg", 1_000_000);
        assert!((1_000_000 + 3600..1_000_000 + 3600 + BUCKET_SECS).contains(&exp));
        assert_eq!(exp % BUCKET_SECS, 0);
        assert!(s.verify("7-tok/feed.jpg", exp, &sig, 1_000_000));
        assert!(s.verify("7-tok/feed.jpg", exp, &sig, exp));
        assert!(!s.verify("7-tok/feed.jpg", exp, &sig, exp + 1), "expired");
        assert!(!s.verify("7-tok/thumb.jpg", exp, &sig, 1_000_000), "another key");
        assert!(!s.verify("7-tok/feed.jpg", exp + BUCKET_SECS, &sig, 1_000_000), "a moved expiry");
        assert!(!s.verify("7-tok/feed.jpg", exp, "zz", 1_000_000), "not hex");
        let other = UrlSigner::new(b"another secret of some length, 32+", 3600);
        assert!(!other.verify("7-tok/feed.jpg", exp, &sig, 1_000_000), "another server's secret");
    }

    #[test]
    fn urls_are_stable_within_a_bucket() {
        let s = UrlSigner::new(b"a secret of some length, 32 bytes+", 3600);
        let start = 10 * BUCKET_SECS; // a bucket boundary
        assert_eq!(s.signed_url("/files/k", "k", start + 1), s.signed_url("/files/k", "k", start + 2));
        assert_ne!(s.signed_url("/files/k", "k", start), s.signed_url("/files/k", "k", start + 1));
    }
}
