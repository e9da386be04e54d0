//! Web Push as the standards spell it: the payload encrypted for one browser with
//! `aes128gcm` (RFC 8291 over RFC 8188), and the sender identified with a VAPID JWT
//! (RFC 8292, ES256). The primitives — P-256 ECDH, HKDF-SHA-256, AES-128-GCM, ECDSA — come
//! from the RustCrypto crates and `jsonwebtoken`; this module only composes them the way the
//! RFCs say, so that every push service and browser can read what it sends.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;

/// The record size written in the header. One record holds the whole message: push
/// services accept at most 4,096 bytes of body, which is what a single record may carry.
const RECORD_SIZE: u32 = 4096;

/// Largest plaintext one message may carry: the record size less the header (86 bytes),
/// the AES-GCM tag (16) and the delimiter (1).
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - 86 - 16 - 1;

/// Why a payload could not be encrypted for (or decrypted by) a subscription.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// `keys.p256dh` is not an uncompressed P-256 point in base64url.
    #[error("p256dh is not a P-256 public key (65 bytes, base64url)")]
    BadPublicKey,
    /// `keys.auth` is not 16 bytes of base64url.
    #[error("auth is not a 16-byte secret (base64url)")]
    BadAuthSecret,
    /// The payload does not fit one record.
    #[error("payload larger than {MAX_PLAINTEXT} bytes")]
    TooLarge,
    /// The body is not an `aes128gcm` message for this key (receiving side).
    #[error("not a message for this key")]
    Undecryptable,
}

/// A browser's subscription keys, decoded and checked.
#[derive(Clone, Debug)]
pub struct Keys {
    /// The user agent's public key, uncompressed (65 bytes).
    pub p256dh: PublicKey,
    /// The shared authentication secret (16 bytes).
    pub auth: [u8; 16],
}

impl Keys {
    /// Parses `keys.p256dh` and `keys.auth` as a `PushSubscription` gives them.
    pub fn parse(p256dh: &str, auth: &str) -> Result<Keys, Error> {
        let point = B64.decode(p256dh.trim_end_matches('=')).map_err(|_| Error::BadPublicKey)?;
        if point.len() != 65 {
            return Err(Error::BadPublicKey);
        }
        let p256dh = PublicKey::from_sec1_bytes(&point).map_err(|_| Error::BadPublicKey)?;
        let auth: [u8; 16] =
            B64.decode(auth.trim_end_matches('=')).ok().and_then(|a| a.try_into().ok()).ok_or(Error::BadAuthSecret)?;
        Ok(Keys { p256dh, auth })
    }
}

fn uncompressed(k: &PublicKey) -> Vec<u8> {
    k.to_encoded_point(false).as_bytes().to_vec()
}

/// The content key and nonce of RFC 8291 §3.4 (from the ECDH secret, both public keys and
/// the auth secret) and RFC 8188 §2.2 (from the salt).
fn key_and_nonce(
    ecdh: &[u8],
    ua_public: &[u8],
    as_public: &[u8],
    auth: &[u8; 16],
    salt: &[u8; 16],
) -> ([u8; 16], [u8; 12]) {
    let mut info = b"WebPush: info\0".to_vec();
    info.extend_from_slice(ua_public);
    info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), ecdh).expand(&info, &mut ikm).expect("32 bytes is a valid HKDF length");
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek).expect("16 bytes is a valid HKDF length");
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce).expect("12 bytes is a valid HKDF length");
    (cek, nonce)
}

/// Encrypts `plaintext` for `to` with a fresh sender key and salt: the body of the POST to
/// the subscription's endpoint, sent with `Content-Encoding: aes128gcm`.
pub fn encrypt(to: &Keys, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
    let sender = SecretKey::random(&mut rand::rngs::OsRng);
    encrypt_with(to, plaintext, &sender, rand::random())
}

/// [`encrypt`] with a given sender key and salt (the RFC's example fixes both).
pub fn encrypt_with(to: &Keys, plaintext: &[u8], sender: &SecretKey, salt: [u8; 16]) -> Result<Vec<u8>, Error> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(Error::TooLarge);
    }
    let as_public = uncompressed(&sender.public_key());
    let ua_public = uncompressed(&to.p256dh);
    let ecdh = p256::ecdh::diffie_hellman(sender.to_nonzero_scalar(), to.p256dh.as_affine());
    let (cek, nonce) = key_and_nonce(ecdh.raw_secret_bytes(), &ua_public, &as_public, &to.auth, &salt);
    // One record, the last: the plaintext and the delimiter 0x02, no padding.
    let mut record = plaintext.to_vec();
    record.push(2);
    let sealed =
        Aes128Gcm::new(&cek.into()).encrypt(Nonce::from_slice(&nonce), record.as_slice()).expect("AES-GCM seals");
    let mut body = Vec::with_capacity(16 + 4 + 1 + 65 + sealed.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.len() as u8);
    body.extend_from_slice(&as_public);
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// The receiving side, as a browser does it with its private key: the plaintext of an
/// `aes128gcm` body. Chorus itself never receives pushes; the test suite's push service
/// reads what Chorus sent with it.
pub fn decrypt(ua_private: &SecretKey, auth: &[u8; 16], body: &[u8]) -> Result<Vec<u8>, Error> {
    if body.len() < 21 {
        return Err(Error::Undecryptable);
    }
    let salt: [u8; 16] = body[..16].try_into().expect("16 bytes");
    let id_len = body[20] as usize;
    let (key_id, sealed) = body[21..].split_at_checked(id_len).ok_or(Error::Undecryptable)?;
    let as_public = PublicKey::from_sec1_bytes(key_id).map_err(|_| Error::Undecryptable)?;
    let ua_public = uncompressed(&ua_private.public_key());
    let ecdh = p256::ecdh::diffie_hellman(ua_private.to_nonzero_scalar(), as_public.as_affine());
    let (cek, nonce) = key_and_nonce(ecdh.raw_secret_bytes(), &ua_public, key_id, auth, &salt);
    let mut record =
        Aes128Gcm::new(&cek.into()).decrypt(Nonce::from_slice(&nonce), sealed).map_err(|_| Error::Undecryptable)?;
    // Strip the padding and the last-record delimiter.
    while record.last() == Some(&0) {
        record.pop();
    }
    if record.pop() != Some(2) {
        return Err(Error::Undecryptable);
    }
    Ok(record)
}

/// The server's VAPID identity (RFC 8292): a P-256 key whose public half browsers are given
/// (`applicationServerKey`) and whose signature on a short JWT proves each push is ours.
#[derive(Clone)]
pub struct Vapid {
    secret: SecretKey,
    encoding: jsonwebtoken::EncodingKey,
    /// `sub`: how a push service can reach the operator (`mailto:` or `https:`).
    subject: String,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid").field("public_key", &self.public_key()).field("subject", &self.subject).finish()
    }
}

/// How long a VAPID token is good for: push services refuse more than 24 hours.
pub const VAPID_TTL_SECS: u64 = 12 * 3600;

impl Vapid {
    /// From the private key as base64url of its 32 bytes (what `push.vapid_private_key` and
    /// the data directory's `vapid_private_key` hold).
    pub fn from_base64(private: &str, subject: &str) -> anyhow::Result<Vapid> {
        let raw = B64.decode(private.trim().trim_end_matches('='))?;
        let secret = SecretKey::from_slice(&raw).map_err(|_| anyhow::anyhow!("not a P-256 private key"))?;
        Self::from_secret(secret, subject)
    }

    fn from_secret(secret: SecretKey, subject: &str) -> anyhow::Result<Vapid> {
        use p256::pkcs8::EncodePrivateKey;
        let der = secret.to_pkcs8_der().map_err(|e| anyhow::anyhow!("encoding the VAPID key: {e}"))?;
        let encoding = jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes());
        Ok(Vapid { secret, encoding, subject: subject.to_string() })
    }

    /// A new random identity.
    pub fn generate(subject: &str) -> anyhow::Result<Vapid> {
        Self::from_secret(SecretKey::random(&mut rand::rngs::OsRng), subject)
    }

    /// The private key as base64url, for keeping it.
    pub fn private_base64(&self) -> String {
        B64.encode(self.secret.to_bytes())
    }

    /// The public key as browsers want it for `applicationServerKey`: base64url of the
    /// uncompressed point.
    pub fn public_key(&self) -> String {
        B64.encode(uncompressed(&self.secret.public_key()))
    }

    /// The `Authorization` header for a push to `endpoint`: `vapid t=<JWT>, k=<public key>`,
    /// the JWT's `aud` being the endpoint's origin.
    pub fn authorization(&self, endpoint: &url::Url, now_secs: u64) -> anyhow::Result<String> {
        let aud = endpoint.origin().ascii_serialization();
        let claims = serde_json::json!({"aud": aud, "exp": now_secs + VAPID_TTL_SECS, "sub": self.subject});
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        let jwt = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok(format!("vapid t={jwt}, k={}", self.public_key()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> Vec<u8> {
        B64.decode(s).unwrap()
    }

    /// RFC 8291, Appendix A: the example message, byte for byte.
    #[test]
    fn the_rfc_8291_example_encrypts_to_the_published_bytes() {
        let sender = SecretKey::from_slice(&b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")).unwrap();
        assert_eq!(
            B64.encode(uncompressed(&sender.public_key())),
            "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
        );
        let keys = Keys::parse(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
            "BTBZMqHH6r4Tts7J_aSIgg",
        )
        .unwrap();
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().unwrap();
        let body = encrypt_with(&keys, b"When I grow up, I want to be a watermelon", &sender, salt).unwrap();
        assert_eq!(
            B64.encode(&body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
        // And the user agent of the example reads it back.
        let ua = SecretKey::from_slice(&b64("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")).unwrap();
        assert_eq!(decrypt(&ua, &keys.auth, &body).unwrap(), b"When I grow up, I want to be a watermelon");
    }

    #[test]
    fn a_fresh_message_reads_back_only_with_the_right_keys() {
        let ua = SecretKey::random(&mut rand::rngs::OsRng);
        let auth: [u8; 16] = rand::random();
        let keys = Keys { p256dh: ua.public_key(), auth };
        let a = encrypt(&keys, b"{\"title\":\"hi\"}").unwrap();
        let b = encrypt(&keys, b"{\"title\":\"hi\"}").unwrap();
        assert_ne!(a, b, "a new salt and sender key every time");
        assert_eq!(decrypt(&ua, &auth, &a).unwrap(), b"{\"title\":\"hi\"}");
        assert_eq!(decrypt(&ua, &[0; 16], &a), Err(Error::Undecryptable), "wrong auth secret");
        let other = SecretKey::random(&mut rand::rngs::OsRng);
        assert_eq!(decrypt(&other, &auth, &a), Err(Error::Undecryptable), "wrong key");
        assert_eq!(encrypt(&keys, &vec![b'x'; MAX_PLAINTEXT + 1]), Err(Error::TooLarge));
        assert!(encrypt(&keys, &vec![b'x'; MAX_PLAINTEXT]).unwrap().len() <= RECORD_SIZE as usize);
    }

    #[test]
    fn subscription_keys_are_checked() {
        assert_eq!(Keys::parse("AAAA", "BTBZMqHH6r4Tts7J_aSIgg").unwrap_err(), Error::BadPublicKey);
        let p = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
        assert_eq!(Keys::parse(p, "c2hvcnQ").unwrap_err(), Error::BadAuthSecret);
        // A point not on the curve.
        let mut bad = b64(p);
        bad[40] ^= 1;
        assert_eq!(Keys::parse(&B64.encode(bad), "BTBZMqHH6r4Tts7J_aSIgg").unwrap_err(), Error::BadPublicKey);
    }

    #[test]
    fn vapid_tokens_verify_with_the_public_key_for_the_endpoint_origin() {
        let v = Vapid::generate("mailto:ops@example.com").unwrap();
        let again = Vapid::from_base64(&v.private_base64(), "mailto:ops@example.com").unwrap();
        assert_eq!(again.public_key(), v.public_key());
        let endpoint = url::Url::parse("https://push.example.net:8443/send/abc?x=1").unwrap();
        let now = crate::domain::now_ms() as u64 / 1000;
        let header = v.authorization(&endpoint, now).unwrap();
        let (t, k) = header.strip_prefix("vapid t=").unwrap().split_once(", k=").unwrap();
        assert_eq!(k, v.public_key());
        // Verify as a push service would: with the uncompressed point from `k`.
        let point = PublicKey::from_sec1_bytes(&b64(k)).unwrap().to_encoded_point(false);
        let key = jsonwebtoken::DecodingKey::from_ec_components(
            &B64.encode(point.x().unwrap()),
            &B64.encode(point.y().unwrap()),
        )
        .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_audience(&["https://push.example.net:8443"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(t, &key, &validation).unwrap().claims;
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        let exp = claims["exp"].as_u64().unwrap();
        assert!(exp > now && exp <= now + 24 * 3600, "exp within 24 h");
    }
}
