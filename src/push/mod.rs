//! Push notifications to devices with no open socket: the server's identity towards push
//! services, the two ways out — Web Push ([`webpush`]: RFC 8030 delivery, RFC 8291
//! encryption, RFC 8292 VAPID) and Firebase Cloud Messaging ([`fcm`]: HTTP v1 with a
//! service account) — and what a push service's answer means ([`Outcome`]). Which device
//! gets what, and the durable job around a send, are `services::push`'s.

pub mod fcm;
pub mod webpush;

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::domain::Id;
pub use webpush::Vapid;

/// What a device shows, fixed when the notification is made (so a retried send shows the
/// same thing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The notification kind (`reaction`, `message`…).
    pub kind: String,
    /// First line: "dave and 2 others reacted to your post".
    pub title: String,
    /// Second line: the comment, the message, or nothing.
    pub body: String,
    /// The client route to open on a click (`/p/42`, `/chat/7`).
    pub url: String,
    /// The group (Web Push `Topic`, FCM `collapse_key` and `tag`): at most 32 URL-safe
    /// base64 characters, the same for every notification of a group, so the newer one
    /// replaces the older on the device (and a resent one shows once).
    pub topic: String,
    /// The in-app notification, where there is one.
    pub notification_id: Option<Id>,
    /// How urgent (Web Push `Urgency`, FCM priority).
    pub urgency: Urgency,
    /// How long a push service keeps it for an unreachable device.
    pub ttl_secs: u32,
}

/// RFC 8030 §5.3 urgency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Urgency {
    /// Reactions.
    Low,
    /// Most notifications.
    Normal,
    /// Chat messages.
    High,
}

impl Urgency {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

/// What became of one send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the push service.
    Delivered,
    /// The subscription or token no longer exists (Web Push 404/410, FCM `UNREGISTERED`):
    /// remove it.
    Gone,
    /// Throttled (429) or unavailable with a `Retry-After`: try again after this long.
    RetryAfter(Duration),
    /// A timeout, a network error, a 5xx: try again with backoff.
    Transient(String),
    /// Refused for good (a bad request, a refused key): trying again would not help.
    Rejected(String),
}

/// A device as the sender needs it.
#[derive(Clone, Copy, Debug)]
pub enum Device<'a> {
    /// A browser: its push service endpoint and keys.
    WebPush {
        /// Endpoint URL.
        endpoint: &'a str,
        /// The browser's public key (base64url).
        p256dh: &'a str,
        /// The auth secret (base64url).
        auth: &'a str,
    },
    /// An app instance's FCM registration token.
    Fcm(&'a str),
}

/// Sends to push services. One per instance, shared.
pub struct Pusher {
    http: reqwest::Client,
    vapid: Option<Vapid>,
    fcm: Option<fcm::Fcm>,
    /// Bounds a whole send, an FCM token fetch (and the wait for another's) included.
    timeout: Duration,
}

impl Pusher {
    /// From the configuration: the VAPID identity ([`load_or_create_vapid`]) and, with
    /// `push.fcm_credentials`, FCM.
    pub fn from_config(config: &Config) -> anyhow::Result<Pusher> {
        let vapid = load_or_create_vapid(config)?;
        let fcm = match &config.push.fcm_credentials {
            Some(path) => {
                let json = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("push.fcm_credentials {}: {e}", path.display()))?;
                let f = fcm::Fcm::new(&json, &config.push.fcm_api_base, config.push.fcm_token_uri.as_deref())
                    .map_err(|e| e.context(format!("push.fcm_credentials {}", path.display())))?;
                Some(f)
            }
            None => None,
        };
        let timeout = Duration::from_millis(config.push.send_timeout_ms);
        if config.push.send_timeout_ms >= config.jobs.lease_ms {
            tracing::warn!(
                "push.send_timeout_ms is not below jobs.lease_ms: a slow send may be claimed again and sent twice"
            );
        }
        // No redirects: an endpoint must be the https:// URL it was registered with, never an
        // address a push service (or an account pretending to be one) points the server to.
        let http = reqwest::Client::builder().timeout(timeout).redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Pusher { http, vapid, fcm, timeout })
    }

    /// The VAPID identity, where Web Push is on.
    pub fn vapid(&self) -> Option<&Vapid> {
        self.vapid.as_ref()
    }

    /// Whether FCM is configured.
    pub fn has_fcm(&self) -> bool {
        self.fcm.is_some()
    }

    /// Sends `msg` to `device`, within the send timeout.
    pub async fn send(&self, device: Device<'_>, msg: &Message) -> Outcome {
        match tokio::time::timeout(self.timeout, self.send_now(device, msg)).await {
            Ok(o) => o,
            Err(_) => Outcome::Transient("push service timed out".into()),
        }
    }

    async fn send_now(&self, device: Device<'_>, msg: &Message) -> Outcome {
        match device {
            Device::WebPush { endpoint, p256dh, auth } => match &self.vapid {
                Some(v) => self.web_push(v, endpoint, p256dh, auth, msg).await,
                None => Outcome::Rejected("Web Push is off on this server".into()),
            },
            Device::Fcm(token) => match &self.fcm {
                Some(f) => f.send(&self.http, token, msg).await,
                None => Outcome::Rejected("FCM is not configured (push.fcm_credentials)".into()),
            },
        }
    }

    /// RFC 8030 delivery: `POST` the RFC 8291 body to the endpoint with VAPID, `TTL`,
    /// `Urgency` and `Topic`.
    async fn web_push(&self, vapid: &Vapid, endpoint: &str, p256dh: &str, auth: &str, msg: &Message) -> Outcome {
        let (url, keys) = match (url::Url::parse(endpoint), webpush::Keys::parse(p256dh, auth)) {
            (Ok(u), Ok(k)) => (u, k),
            _ => return Outcome::Gone, // a registration that can no longer be used
        };
        let payload = web_push_payload(msg);
        let body = match webpush::encrypt(&keys, &payload) {
            Ok(b) => b,
            Err(e) => return Outcome::Rejected(format!("encrypting: {e}")),
        };
        let authorization = match vapid.authorization(&url, crate::domain::now_ms() as u64 / 1000) {
            Ok(a) => a,
            Err(e) => return Outcome::Rejected(format!("signing VAPID: {e}")),
        };
        let res = self
            .http
            .post(url)
            .header("Authorization", authorization)
            .header("TTL", msg.ttl_secs.to_string())
            .header("Urgency", msg.urgency.as_str())
            .header("Topic", &msg.topic)
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .send()
            .await;
        let res = match res {
            Ok(r) => r,
            Err(e) => return Outcome::Transient(format!("push service: {e}")),
        };
        let status = res.status().as_u16();
        let wait = retry_after(res.headers());
        match status {
            200..=299 => Outcome::Delivered,
            404 | 410 => Outcome::Gone,
            429 => Outcome::RetryAfter(wait.unwrap_or(Duration::from_secs(60))),
            500.. => match wait {
                Some(w) => Outcome::RetryAfter(w),
                None => Outcome::Transient(format!("push service answered {status}")),
            },
            _ => {
                let text = res.text().await.unwrap_or_default();
                Outcome::Rejected(format!(
                    "push service answered {status}: {}",
                    text.chars().take(300).collect::<String>()
                ))
            }
        }
    }
}

/// What the service worker receives: the message as JSON, cut to what one record holds.
pub fn web_push_payload(msg: &Message) -> Vec<u8> {
    let mut m = msg.clone();
    loop {
        let json = serde_json::to_vec(&serde_json::json!({
            "kind": m.kind, "title": m.title, "body": m.body, "url": m.url, "tag": m.topic,
            "notification_id": m.notification_id.map(|i| i.to_string()),
        }))
        .expect("a push payload serialises");
        if json.len() <= webpush::MAX_PLAINTEXT || m.body.is_empty() {
            return json;
        }
        // Shorten the body (it is a preview anyway) until the record fits.
        let keep = m.body.chars().count() / 2;
        m.body = m.body.chars().take(keep).collect();
    }
}

/// A `Retry-After` header in seconds (the HTTP-date form is not used by push services).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(24 * 3600)))
}

/// The VAPID identity: the configured key, or on a single node one generated once and kept
/// in the data directory (`vapid_private_key`). A cluster without a configured key has no
/// Web Push (`None`, with a warning): browsers subscribe with the key's public half and
/// every instance must sign with the same one, so instances cannot each make their own.
pub fn load_or_create_vapid(config: &Config) -> anyhow::Result<Option<Vapid>> {
    let subject = config.push.vapid_subject.clone().unwrap_or_else(|| mailto(&config.mail_from));
    if let Some(k) = &config.push.vapid_private_key {
        return Vapid::from_base64(k, &subject).map(Some).map_err(|e| e.context("push.vapid_private_key"));
    }
    if config.redis_url.is_some() {
        tracing::warn!(
            "Web Push is off: set push.vapid_private_key (CHORUS_PUSH__VAPID_PRIVATE_KEY), the same on every instance"
        );
        return Ok(None);
    }
    load_or_create_in(&config.data_dir, &subject).map(Some)
}

fn load_or_create_in(dir: &Path, subject: &str) -> anyhow::Result<Vapid> {
    let path = dir.join("vapid_private_key");
    let key = crate::auth::tokens::kept_secret(&path, "VAPID key for Web Push", || {
        Ok(Vapid::generate(subject)?.private_base64())
    })?;
    Vapid::from_base64(&key, subject).map_err(|e| e.context(format!("{}: delete it to regenerate", path.display())))
}

/// `mailto:` the address in a `From:` value (`Chorus <no-reply@chorus.local>`).
fn mailto(from: &str) -> String {
    let addr = from.rsplit_once('<').map(|(_, a)| a.trim_end_matches('>')).unwrap_or(from).trim();
    format!("mailto:{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_in(dir.path(), "mailto:a@b").unwrap();
        let b = load_or_create_in(dir.path(), "mailto:a@b").unwrap();
        assert_eq!(a.public_key(), b.public_key());
        std::fs::write(dir.path().join("vapid_private_key"), "garbage").unwrap();
        assert!(load_or_create_in(dir.path(), "mailto:a@b").is_err(), "a damaged key is an error, not a new identity");
    }

    #[test]
    fn a_cluster_pushes_only_with_a_configured_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg =
            Config { data_dir: dir.path().to_path_buf(), redis_url: Some("redis://x".into()), ..Config::default() };
        assert!(load_or_create_vapid(&cfg).unwrap().is_none(), "no per-instance keys in a cluster");
        assert!(!dir.path().join("vapid_private_key").exists());
        let key = Vapid::generate("mailto:x@y").unwrap();
        cfg.push.vapid_private_key = Some(key.private_base64());
        assert_eq!(load_or_create_vapid(&cfg).unwrap().unwrap().public_key(), key.public_key());
        cfg.push.vapid_private_key = Some("not a key".into());
        assert!(load_or_create_vapid(&cfg).is_err(), "a bad configured key stops the start");
    }

    #[test]
    fn the_subject_defaults_to_the_mail_sender() {
        assert_eq!(mailto("Chorus <no-reply@chorus.local>"), "mailto:no-reply@chorus.local");
        assert_eq!(mailto("ops@example.com"), "mailto:ops@example.com");
    }
}
