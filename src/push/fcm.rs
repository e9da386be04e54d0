//! Firebase Cloud Messaging, HTTP v1 API.
//!
//! Authentication is OAuth 2.0 for a service account (Google's "server to server" flow):
//! a JWT signed RS256 with the account's private key (`iss` = its e-mail, `scope` =
//! `firebase.messaging`, `aud` = the token endpoint, at most an hour long) is exchanged at
//! the key file's `token_uri` for an access token, which is cached until shortly before it
//! expires and then fetched again by whichever send needs it first (one fetch at a time).
//! Messages go to `{api_base}/v1/projects/{project_id}/messages:send`.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use super::{Message, Outcome, retry_after};

/// The OAuth scope that sends FCM messages.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// Google's documented token endpoint (the key file names it too).
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// An access token is renewed this long before it expires.
const RENEW_EARLY: Duration = Duration::from_secs(60);

/// The fields of a service-account key file (`*.json` from the Firebase console) used here.
#[derive(Clone, Deserialize)]
pub struct ServiceAccount {
    /// The Firebase project.
    pub project_id: String,
    /// The key's id (the JWT's `kid`).
    #[serde(default)]
    pub private_key_id: String,
    /// PEM (PKCS#8) RSA private key.
    pub private_key: String,
    /// The service account (`iss`).
    pub client_email: String,
    /// Where assertions are exchanged for access tokens.
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    DEFAULT_TOKEN_URI.to_string()
}

/// A configured FCM sender.
pub struct Fcm {
    account: ServiceAccount,
    key: jsonwebtoken::EncodingKey,
    send_url: String,
    token: Mutex<Option<(String, Instant)>>,
}

impl Fcm {
    /// From a key file's JSON, the API base (`https://fcm.googleapis.com`) and an optional
    /// override of the key file's `token_uri` (a proxy, a test double).
    pub fn new(key_json: &str, api_base: &str, token_uri: Option<&str>) -> anyhow::Result<Fcm> {
        let mut account: ServiceAccount = serde_json::from_str(key_json)?;
        if let Some(uri) = token_uri {
            account.token_uri = uri.to_string();
        }
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|e| anyhow::anyhow!("private_key is not an RSA PEM key: {e}"))?;
        let send_url = format!("{}/v1/projects/{}/messages:send", api_base.trim_end_matches('/'), account.project_id);
        Ok(Fcm { account, key, send_url, token: Mutex::new(None) })
    }

    /// The signed assertion for the token endpoint.
    fn assertion(&self, now_secs: u64) -> anyhow::Result<String> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.account.private_key_id.clone()).filter(|k| !k.is_empty());
        let claims = json!({
            "iss": self.account.client_email,
            "scope": SCOPE,
            "aud": self.account.token_uri,
            "iat": now_secs,
            "exp": now_secs + 3600,
        });
        Ok(jsonwebtoken::encode(&header, &claims, &self.key)?)
    }

    /// A valid access token: the cached one, or a new one from the token endpoint. The lock
    /// is held across the exchange on purpose: concurrent sends wait for one fetch instead
    /// of each signing and fetching their own (this is not a hot path: once an hour).
    async fn access_token(&self, http: &reqwest::Client) -> Result<String, Outcome> {
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let assertion =
            self.assertion(crate::domain::now_ms() as u64 / 1000).map_err(|e| Outcome::Rejected(e.to_string()))?;
        let res = http
            .post(&self.account.token_uri)
            .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())])
            .send()
            .await
            .map_err(|e| Outcome::Transient(format!("FCM token endpoint: {e}")))?;
        let status = res.status();
        if !status.is_success() {
            let body = res.text().await.unwrap_or_default();
            let why = format!("FCM token endpoint answered {status}: {body}");
            // 5xx and 429 pass; a refused assertion (400/401) is the configuration's fault.
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                Outcome::Transient(why)
            } else {
                Outcome::Rejected(why)
            });
        }
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
            expires_in: u64,
        }
        let t: Token = res.json().await.map_err(|e| Outcome::Transient(format!("FCM token answer: {e}")))?;
        let until = Instant::now() + Duration::from_secs(t.expires_in).saturating_sub(RENEW_EARLY);
        *cached = Some((t.access_token.clone(), until));
        Ok(t.access_token)
    }

    /// Sends `msg` to the app instance holding `token`.
    pub async fn send(&self, http: &reqwest::Client, token: &str, msg: &Message) -> Outcome {
        let access = match self.access_token(http).await {
            Ok(a) => a,
            Err(o) => return o,
        };
        let res = match http.post(&self.send_url).bearer_auth(&access).json(&message_json(token, msg)).send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Transient(format!("FCM: {e}")),
        };
        let status = res.status();
        if status.is_success() {
            return Outcome::Delivered;
        }
        let wait = retry_after(res.headers());
        let body = res.text().await.unwrap_or_default();
        let code = error_code(&body);
        match (status.as_u16(), code.as_deref()) {
            // The token is no longer valid, or belongs to another Firebase project: FCM's
            // documentation says to remove it. A bare 404 is not that (a wrong project or
            // API base would otherwise remove every device).
            (_, Some("UNREGISTERED" | "SENDER_ID_MISMATCH")) => Outcome::Gone,
            // The APNs or Web Push credentials in the Firebase project are wrong: a
            // configuration problem, not an expired access token.
            (_, Some("THIRD_PARTY_AUTH_ERROR")) => Outcome::Rejected(format!("FCM third-party auth: {body}")),
            (401, _) => {
                // The access token was revoked or expired early: fetch a new one next time.
                *self.token.lock().await = None;
                Outcome::Transient(format!("FCM refused the access token: {body}"))
            }
            (429, _) => Outcome::RetryAfter(wait.unwrap_or(Duration::from_secs(60))),
            (s, _) if s >= 500 => match wait {
                Some(w) => Outcome::RetryAfter(w),
                None => Outcome::Transient(format!("FCM answered {status}: {body}")),
            },
            _ => Outcome::Rejected(format!("FCM answered {status}: {body}")),
        }
    }
}

/// The v1 message: a `notification` part the system shows, a `data` part (strings only)
/// the app reads, and the group as Android `collapse_key`/`tag`, the APNs collapse id and
/// the Web Push `Topic`, so a newer notification of the group replaces the older one.
pub fn message_json(token: &str, msg: &Message) -> serde_json::Value {
    let mut data = serde_json::Map::new();
    data.insert("kind".into(), msg.kind.clone().into());
    data.insert("url".into(), msg.url.clone().into());
    data.insert("tag".into(), msg.topic.clone().into());
    if let Some(id) = msg.notification_id {
        data.insert("notification_id".into(), id.to_string().into());
    }
    let mut notification = json!({"title": msg.title});
    if !msg.body.is_empty() {
        notification["body"] = msg.body.clone().into();
    }
    let priority = if msg.urgency == super::Urgency::High { "high" } else { "normal" };
    json!({"message": {
        "token": token,
        "notification": notification,
        "data": data,
        "android": {
            "collapse_key": msg.topic,
            "priority": priority,
            "ttl": format!("{}s", msg.ttl_secs),
            "notification": {"tag": msg.topic},
        },
        "apns": {"headers": {
            "apns-collapse-id": msg.topic,
            "apns-priority": if priority == "high" { "10" } else { "5" },
        }},
    }})
}

/// `error.details[].errorCode` of an FCM error answer (`UNREGISTERED`, `QUOTA_EXCEEDED`…).
fn error_code(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let detail = v["error"]["details"].as_array().and_then(|ds| ds.iter().find_map(|d| d["errorCode"].as_str()));
    detail.or_else(|| v["error"]["status"].as_str()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_come_from_the_details() {
        let body = r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND",
            "details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#;
        assert_eq!(error_code(body).as_deref(), Some("UNREGISTERED"));
        assert_eq!(error_code(r#"{"error":{"status":"UNAVAILABLE"}}"#).as_deref(), Some("UNAVAILABLE"));
        assert_eq!(error_code("not json"), None);
    }
}
