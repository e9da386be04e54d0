//! Stand-ins for the push services Chorus talks to, on 127.0.0.1, checking every request the
//! way the services document them and answering like them. Browser vendors' and Google's
//! servers are out of reach, so this is the "local server that checks requests".
//!
//! **Web Push** (`POST /wp/{device}`), as a browser vendor's push service (RFC 8030):
//! - `Authorization: vapid t=<JWT>, k=<key>` (RFC 8292): the JWT must verify ES256 under `k`,
//!   carry `aud` = this service's origin, an `exp` in the future and at most 24 hours away,
//!   and a `sub` that is a `mailto:` or `https:` URL;
//! - `TTL` (a number), `Urgency` (very-low|low|normal|high), `Topic` (≤ 32 URL-safe base64
//!   characters), `Content-Encoding: aes128gcm`;
//! - the body must *decrypt* (RFC 8291) with the private key and auth secret that the test's
//!   [`Browser`] made, exactly as a browser would; the plaintext must be JSON.
//!
//! **FCM** (HTTP v1):
//! - `POST /token`: an OAuth 2.0 JWT-bearer grant whose assertion verifies RS256 under the
//!   test service account's public key (`tests/fixtures/fcm-test-key.pub.pem`), with `iss`
//!   the account's e-mail, `scope` the FCM scope, `aud` this endpoint and at most an hour
//!   of validity; answers `{"access_token","expires_in","token_type":"Bearer"}`.
//! - `POST /v1/projects/chorus-test/messages:send`: a `Bearer` token it issued and a v1
//!   message (`message.token`, `notification.title`, `data` of strings only, the group in
//!   `android.collapse_key`); answers `{"name": "projects/…/messages/N"}`, or FCM's error
//!   shape (`UNREGISTERED`, `QUOTA_EXCEEDED`, `INTERNAL`).
//!
//! One service runs per test process, on a thread of its own (each test has its own
//! runtime); tests keep apart by their devices' unique names. What a device answers is
//! scripted with [`PushService::script`]. What a device *shows* is kept the way a phone
//! keeps it: a push with the `Topic`/collapse key of one it shows replaces it. Tests await
//! the service's state with [`PushService::wait_for`], which wakes on every request.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::SecretKey;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// The service account the test configuration uses.
pub const FCM_KEY_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fcm-service-account.json");
const FCM_PUBLIC_KEY: &[u8] = include_bytes!("../../fixtures/fcm-test-key.pub.pem");
const FCM_CLIENT_EMAIL: &str = "chorus-push@chorus-test.iam.gserviceaccount.com";
const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// How a device's push service answers its next push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 201 (Web Push) / 200 (FCM): shown.
    Accept,
    /// 429 with `Retry-After: secs`.
    Throttle(u64),
    /// 410 Gone (Web Push) / 404 `UNREGISTERED` (FCM).
    Gone,
    /// 500.
    Fail,
    /// Takes the push (the device shows it) and never answers: what the sender sees when
    /// it dies between the service's acceptance and reading the answer.
    AcceptAndStall,
}

/// One push as the service received it.
#[derive(Clone, Debug)]
pub struct Push {
    /// `web_push` or `fcm`.
    pub service: &'static str,
    /// The decrypted payload (Web Push) or the v1 `message` (FCM).
    pub payload: Value,
    pub topic: String,
    pub ttl: String,
    pub urgency: String,
    pub at: Instant,
    /// What it was answered.
    pub answer: Answer,
    /// FCM: the access token it was sent with.
    pub bearer: String,
}

#[derive(Default)]
pub struct State {
    /// Every push that passed the checks, per device, in order (whatever the answer).
    pub pushes: HashMap<String, Vec<Push>>,
    /// What each device shows: by `Topic`, the latest push.
    pub shown: HashMap<String, HashMap<String, Value>>,
    /// Requests that failed a check, with the reason.
    pub rejected: Vec<String>,
    /// FCM access tokens issued.
    pub tokens_issued: u32,
    scripts: HashMap<String, VecDeque<Answer>>,
    browsers: HashMap<String, (SecretKey, [u8; 16])>,
    /// The `applicationServerKey` a browser subscribed with: the only `k` its pushes may
    /// carry (a push service refuses another key's).
    server_keys: HashMap<String, String>,
    access_tokens: HashSet<String>,
}

impl State {
    /// Pushes a device received.
    pub fn of(&self, device: &str) -> &[Push] {
        self.pushes.get(device).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The access tokens an FCM device's pushes came with.
    pub fn bearers_of(&self, device: &str) -> Vec<String> {
        self.of(device).iter().map(|p| p.bearer.clone()).collect()
    }

    /// How many notifications a device shows.
    pub fn showing(&self, device: &str) -> usize {
        self.shown.get(device).map_or(0, HashMap::len)
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Notify,
    origin: String,
}

/// The running service.
pub struct PushService {
    /// `http://127.0.0.1:port`.
    pub base: String,
    shared: Arc<Shared>,
}

/// A browser's side of a Web Push subscription: its own P-256 key pair and auth secret.
pub struct Browser {
    /// The device's name at the service.
    pub device: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

impl Browser {
    /// `JSON.stringify(pushSubscription)`.
    pub fn subscription(&self) -> Value {
        json!({"endpoint": self.endpoint, "expirationTime": null, "keys": {"p256dh": self.p256dh, "auth": self.auth}})
    }
}

/// The one service of this test process.
pub fn push_service() -> &'static PushService {
    static SERVICE: OnceLock<PushService> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind push service");
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared =
            Arc::new(Shared { state: Mutex::new(State::default()), changed: Notify::new(), origin: base.clone() });
        let app = Router::new()
            .route("/wp/{device}", post(web_push))
            .route("/token", post(token))
            .route("/v1/projects/{project}/messages:send", post(fcm_send))
            .with_state(shared.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        PushService { base, shared }
    })
}

impl PushService {
    /// A new browser with a subscription at this service.
    pub fn browser(&self, name: &str) -> Browser {
        let device = format!("{name}-{}", rand::random::<u64>());
        let secret = SecretKey::random(&mut rand::rngs::OsRng);
        let auth: [u8; 16] = rand::random();
        let public = secret.public_key();
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&public, false);
        self.shared.state.lock().unwrap().browsers.insert(device.clone(), (secret, auth));
        Browser {
            endpoint: format!("{}/wp/{device}", self.base),
            p256dh: B64.encode(point.as_bytes()),
            auth: B64.encode(auth),
            device,
        }
    }

    /// Subscribes `device` with the server's VAPID public key, as `PushManager.subscribe`
    /// does: its pushes must be signed with that key (else `403`).
    pub fn subscribed_with(&self, device: &str, server_key: &str) {
        self.shared.state.lock().unwrap().server_keys.insert(device.to_string(), server_key.to_string());
    }

    /// A new FCM registration token (the device's name at the service).
    pub fn fcm_token(&self, name: &str) -> String {
        format!("{name}:{}", rand::random::<u64>())
    }

    /// The answers `device` gives its next pushes, in order (then [`Answer::Accept`]).
    pub fn script(&self, device: &str, answers: &[Answer]) {
        self.shared.state.lock().unwrap().scripts.insert(device.to_string(), answers.iter().copied().collect());
    }

    /// Reads the state.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.shared.state.lock().unwrap())
    }

    /// Waits until `f` holds (checked after every request), up to `timeout`.
    pub async fn wait_for(&self, timeout: Duration, what: &str, f: impl Fn(&State) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let s = self.shared.state.lock().unwrap();
                if f(&s) {
                    return;
                }
                if tokio::time::Instant::now() >= deadline {
                    panic!("push service: {what} not within {timeout:?}; rejected: {:?}", s.rejected);
                }
            }
            let _ = tokio::time::timeout_at(deadline, changed).await;
        }
    }
}

impl Shared {
    fn reject(&self, why: String) -> Response {
        self.state.lock().unwrap().rejected.push(why.clone());
        self.changed.notify_waiters();
        (StatusCode::BAD_REQUEST, why).into_response()
    }

    /// Records a checked push and returns its scripted answer.
    fn record(&self, device: &str, mut push: Push) -> Answer {
        let mut s = self.state.lock().unwrap();
        let answer = s.scripts.get_mut(device).and_then(VecDeque::pop_front).unwrap_or(Answer::Accept);
        push.answer = answer;
        if matches!(answer, Answer::Accept | Answer::AcceptAndStall) {
            s.shown.entry(device.to_string()).or_default().insert(push.topic.clone(), push.payload.clone());
        }
        s.pushes.entry(device.to_string()).or_default().push(push);
        drop(s);
        self.changed.notify_waiters();
        answer
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn valid_topic(t: &str) -> bool {
    t.len() <= 32 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn web_push(
    AxState(sh): AxState<Arc<Shared>>,
    Path(device): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // RFC 8292: the VAPID token and key.
    let Some(auth) = header(&headers, "authorization").strip_prefix("vapid ") else {
        return sh.reject(format!("{device}: no vapid Authorization"));
    };
    let mut t = None;
    let mut k = None;
    for part in auth.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.to_string()),
            Some(("k", v)) => k = Some(v.to_string()),
            _ => {}
        }
    }
    let (Some(jwt), Some(key)) = (t, k) else { return sh.reject(format!("{device}: vapid without t= and k=")) };
    let expected = sh.state.lock().unwrap().server_keys.get(&device).cloned();
    if expected.is_some_and(|e| e != key) {
        sh.reject(format!("{device}: signed with another key than the subscription's"));
        return StatusCode::FORBIDDEN.into_response();
    }
    let Ok(point) = B64.decode(&key) else { return sh.reject(format!("{device}: k is not base64url")) };
    if point.len() != 65 || point[0] != 4 {
        return sh.reject(format!("{device}: k is not an uncompressed P-256 point"));
    }
    let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..]));
    let decoding = jsonwebtoken::DecodingKey::from_ec_components(&x, &y).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[&sh.origin]);
    v.set_required_spec_claims(&["exp", "aud", "sub"]);
    let claims = match jsonwebtoken::decode::<Value>(&jwt, &decoding, &v) {
        Ok(d) => d.claims,
        Err(e) => return sh.reject(format!("{device}: VAPID JWT refused: {e}")),
    };
    let now = chrono::Utc::now().timestamp();
    if claims["exp"].as_i64().is_none_or(|exp| exp > now + 24 * 3600) {
        return sh.reject(format!("{device}: exp more than 24 h away"));
    }
    let sub = claims["sub"].as_str().unwrap_or("");
    if !(sub.starts_with("mailto:") || sub.starts_with("https:")) {
        return sh.reject(format!("{device}: sub {sub:?} is not mailto: or https:"));
    }
    // RFC 8030 headers.
    let (ttl, urgency, topic) = (header(&headers, "ttl"), header(&headers, "urgency"), header(&headers, "topic"));
    if ttl.parse::<u64>().is_err() {
        return sh.reject(format!("{device}: TTL {ttl:?}"));
    }
    if !["very-low", "low", "normal", "high"].contains(&urgency) {
        return sh.reject(format!("{device}: Urgency {urgency:?}"));
    }
    if !valid_topic(topic) {
        return sh.reject(format!("{device}: Topic {topic:?}"));
    }
    if header(&headers, "content-encoding") != "aes128gcm" {
        return sh.reject(format!("{device}: Content-Encoding is not aes128gcm"));
    }
    // RFC 8291: decrypt as the browser does.
    let keys = sh.state.lock().unwrap().browsers.get(&device).map(|(s, a)| (s.clone(), *a));
    let Some((secret, auth_secret)) = keys else {
        return (StatusCode::NOT_FOUND, "no such subscription").into_response();
    };
    let plain = match chorus::push::webpush::decrypt(&secret, &auth_secret, &body) {
        Ok(p) => p,
        Err(e) => return sh.reject(format!("{device}: payload does not decrypt: {e}")),
    };
    let Ok(payload) = serde_json::from_slice::<Value>(&plain) else {
        return sh.reject(format!("{device}: payload is not JSON"));
    };
    let push = Push {
        service: "web_push",
        payload,
        topic: topic.to_string(),
        ttl: ttl.to_string(),
        urgency: urgency.to_string(),
        at: Instant::now(),
        answer: Answer::Accept,
        bearer: String::new(),
    };
    match sh.record(&device, push) {
        Answer::Accept => {
            (StatusCode::CREATED, [("location", format!("/m/{}", rand::random::<u64>()))]).into_response()
        }
        Answer::Throttle(secs) => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", secs.to_string())]).into_response(),
        Answer::Gone => (StatusCode::GONE, "push subscription has unsubscribed or expired").into_response(),
        Answer::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Answer::AcceptAndStall => std::future::pending().await,
    }
}

async fn token(AxState(sh): AxState<Arc<Shared>>, Form(form): Form<HashMap<String, String>>) -> Response {
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        sh.reject("token: grant_type".into());
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "unsupported_grant_type"}))).into_response();
    }
    let assertion = form.get("assertion").map(String::as_str).unwrap_or("");
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(FCM_PUBLIC_KEY).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[format!("{}/token", sh.origin)]);
    v.set_issuer(&[FCM_CLIENT_EMAIL]);
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let claims = match jsonwebtoken::decode::<Value>(assertion, &key, &v) {
        Ok(d) => d.claims,
        Err(e) => {
            sh.reject(format!("token: assertion refused: {e}"));
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant", "error_description": e.to_string()})),
            )
                .into_response();
        }
    };
    let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    if claims["scope"] != FCM_SCOPE || !(1..=3600).contains(&lifetime) {
        sh.reject(format!("token: scope {} / lifetime {lifetime}", claims["scope"]));
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_scope"}))).into_response();
    }
    let mut s = sh.state.lock().unwrap();
    s.tokens_issued += 1;
    let t = format!("ya29.test-{}", rand::random::<u64>());
    s.access_tokens.insert(t.clone());
    drop(s);
    sh.changed.notify_waiters();
    Json(json!({"access_token": t, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

fn fcm_error(code: u16, status: &str, error_code: &str) -> Response {
    let body = json!({"error": {"code": code, "message": status, "status": status, "details": [
        {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}]}});
    (StatusCode::from_u16(code).unwrap(), Json(body)).into_response()
}

async fn fcm_send(
    AxState(sh): AxState<Arc<Shared>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let bearer = header(&headers, "authorization").strip_prefix("Bearer ").unwrap_or("").to_string();
    if project != "chorus-test" || !sh.state.lock().unwrap().access_tokens.contains(&bearer) {
        sh.reject(format!("fcm: project {project} / token not issued here"));
        return fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR");
    }
    let m = &body["message"];
    let device = m["token"].as_str().unwrap_or("").to_string();
    let data_ok = m["data"].as_object().is_some_and(|d| d.values().all(Value::is_string));
    let topic = m["android"]["collapse_key"].as_str().unwrap_or("").to_string();
    if device.is_empty()
        || !m["notification"]["title"].is_string()
        || !data_ok
        || !valid_topic(&topic)
        || topic.is_empty()
    {
        sh.reject(format!("fcm: invalid message {m}"));
        return fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT");
    }
    let push = Push {
        service: "fcm",
        payload: m.clone(),
        topic,
        ttl: m["android"]["ttl"].as_str().unwrap_or("").to_string(),
        urgency: m["android"]["priority"].as_str().unwrap_or("").to_string(),
        at: Instant::now(),
        answer: Answer::Accept,
        bearer,
    };
    match sh.record(&device, push) {
        Answer::Accept => {
            Json(json!({"name": format!("projects/{project}/messages/{}", rand::random::<u64>())})).into_response()
        }
        Answer::Throttle(secs) => {
            let mut r = fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED");
            r.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
            r
        }
        Answer::Gone => fcm_error(404, "NOT_FOUND", "UNREGISTERED"),
        Answer::Fail => fcm_error(500, "INTERNAL", "INTERNAL"),
        Answer::AcceptAndStall => std::future::pending().await,
    }
}
