//! A stand-in for Cloudinary's upload API, on 127.0.0.1:0, that checks every request the way
//! Cloudinary documents it and answers like Cloudinary:
//!
//! - `POST /v1_1/{cloud}/{image|video}/upload` (multipart: `file`, `api_key`, `timestamp`,
//!   `public_id`, `signature`) → `{"public_id","secure_url","width","height","bytes",…}`
//! - `POST /v1_1/{cloud}/{image|video}/destroy` (`public_id`, `api_key`, `timestamp`,
//!   `signature`, `type`?, …) → `{"result":"ok"}` or `{"result":"not found"}` (an object is
//!   found only under the delivery `type` it was uploaded with, `upload` by default)
//! - `GET /{cloud}/{image|video}/upload/{public_id}.{ext}`: a public object;
//!   `GET /{cloud}/{image|video}/authenticated/s--{sig}--/{public_id}.{ext}`: an
//!   authenticated one with a signed delivery URL (the first 8 characters of the URL-safe
//!   base64 of SHA-1 over what follows the signature and the API secret), or
//!   `GET /{cloud}/{image|video}/authenticated/{public_id}.{ext}?__cld_token__=exp=…~hmac=…`
//!   with a token (HMAC-SHA256 with the hex-decoded [`AUTH_TOKEN_KEY`] over
//!   `exp=…~url={path}`, refused once `exp` is past). Anything else is 401.
//!
//! Signature check (written from Cloudinary's documentation, independently of the server's
//! code): every parameter except `file`, `cloud_name`, `resource_type`, `api_key` and the
//! signature itself, sorted by name, `k=v` joined with `&`, the API secret appended, SHA-1,
//! hex. A request that fails any check gets Cloudinary's 401/400 error shape and is listed
//! in [`State::rejected`].
//!
//! [`CloudinaryDouble::fail_next_destroys`] makes the next N destroy calls answer 500/503 (an
//! outage). Tests await the double's state with [`CloudinaryDouble::wait_for`], which wakes
//! on every request — no polling.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Multipart, Path};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use serde_json::json;
use sha1::{Digest, Sha1};
use tokio::sync::watch;

pub const CLOUD: &str = "chorus-test";
pub const API_KEY: &str = "123456789012345";
pub const API_SECRET: &str = "s3cr3t-Abc_xyz";
/// The account's authentication token key (hex), for token-based delivery.
pub const AUTH_TOKEN_KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

/// One stored object.
#[derive(Clone, Debug)]
pub struct Object {
    pub resource_type: String,
    /// Delivery type: `upload` (public) or `authenticated`.
    pub kind: String,
    pub bytes: Vec<u8>,
}

/// What the double has seen.
#[derive(Debug, Default)]
pub struct State {
    /// Objects by public_id.
    pub objects: HashMap<String, Object>,
    /// Every accepted upload's public_id, in order.
    pub uploads: Vec<String>,
    /// Every successful destroy's public_id (found or not), in order.
    pub destroyed: Vec<String>,
    /// Destroy calls answered with an outage.
    pub failed_destroys: u32,
    /// Requests refused by the checks, with the reason.
    pub rejected: Vec<String>,
    fail_destroys_left: u32,
}

/// The running double.
pub struct CloudinaryDouble {
    /// Base URL to give as `cloudinary_api_base`.
    pub base: String,
    shared: Arc<Shared>,
    _server: tokio::task::JoinHandle<()>,
}

struct Shared {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Shared {
    fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.state.lock().unwrap());
        self.changed.send_modify(|n| *n += 1);
        out
    }
}

impl CloudinaryDouble {
    pub async fn start() -> CloudinaryDouble {
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), changed: watch::channel(0).0 });
        let (s1, s2, s3) = (shared.clone(), shared.clone(), shared.clone());
        let app = Router::new()
            .route(
                "/v1_1/{cloud}/{resource_type}/upload",
                post(move |p: Path<(String, String)>, m: Multipart| upload(s1.clone(), p, m)),
            )
            .route(
                "/v1_1/{cloud}/{resource_type}/destroy",
                post(move |p: Path<(String, String)>, f: Form<HashMap<String, String>>| destroy(s2.clone(), p, f)),
            )
            .route(
                "/{cloud}/{resource_type}/{kind}/{*rest}",
                axum::routing::get(move |p: Path<(String, String, String, String)>, u: axum::http::Uri| {
                    deliver(s3.clone(), p, u)
                }),
            )
            .layer(DefaultBodyLimit::disable());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        CloudinaryDouble { base, shared, _server: server }
    }

    /// `cloudinary://key:secret@cloud` for this double.
    pub fn url(&self) -> String {
        format!("cloudinary://{API_KEY}:{API_SECRET}@{CLOUD}")
    }

    /// The next `n` destroy calls fail with 500/503.
    pub fn fail_next_destroys(&self, n: u32) {
        self.shared.update(|s| s.fail_destroys_left = n);
    }

    /// Reads the state.
    pub fn with<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.shared.state.lock().unwrap())
    }

    /// Waits until `pred` holds, re-checking after every request the double handles.
    pub async fn wait_for(&self, timeout: Duration, what: &str, pred: impl Fn(&State) -> bool) {
        let mut rx = self.shared.changed.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                if self.with(&pred) {
                    return;
                }
                rx.changed().await.unwrap();
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "Cloudinary double: {what} did not happen within {timeout:?}; state: {:?}",
            self.summary()
        );
    }

    fn summary(&self) -> String {
        self.with(|s| {
            format!(
                "objects={:?} uploads={:?} destroyed={:?} failed_destroys={} rejected={:?}",
                s.objects.keys().collect::<Vec<_>>(),
                s.uploads,
                s.destroyed,
                s.failed_destroys,
                s.rejected
            )
        })
    }
}

/// Cloudinary's signature of `params`, computed from its documentation.
fn expected_signature(params: &BTreeMap<String, String>) -> String {
    let excluded = ["file", "cloud_name", "resource_type", "api_key", "signature"];
    let to_sign = params
        .iter()
        .filter(|(k, v)| !excluded.contains(&k.as_str()) && !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    hex::encode(Sha1::digest(format!("{to_sign}{API_SECRET}").as_bytes()))
}

/// Cloudinary's error answer; the refusal is recorded.
fn refuse(shared: &Shared, (status, why): (StatusCode, String)) -> Response {
    shared.update(|s| s.rejected.push(why.clone()));
    (status, Json(json!({"error": {"message": why}}))).into_response()
}

/// Checks a request like Cloudinary does; `Err` is the status and message to answer with.
fn check(cloud: &str, resource_type: &str, params: &BTreeMap<String, String>) -> Result<(), (StatusCode, String)> {
    let refuse = |status: StatusCode, why: String| Err((status, why));
    if cloud != CLOUD {
        return refuse(StatusCode::NOT_FOUND, format!("Unknown cloud {cloud}"));
    }
    if resource_type != "image" && resource_type != "video" {
        return refuse(StatusCode::BAD_REQUEST, format!("Invalid resource type {resource_type}"));
    }
    if params.get("api_key").map(String::as_str) != Some(API_KEY) {
        return refuse(StatusCode::UNAUTHORIZED, "Invalid api_key".into());
    }
    let Some(ts) = params.get("timestamp").and_then(|t| t.parse::<i64>().ok()) else {
        return refuse(StatusCode::BAD_REQUEST, "Missing required parameter - timestamp".into());
    };
    if (chrono::Utc::now().timestamp() - ts).abs() > 3600 {
        return refuse(StatusCode::BAD_REQUEST, "Stale request - reported time is too old".into());
    }
    if params.get("public_id").is_none_or(|p| p.is_empty()) {
        return refuse(StatusCode::BAD_REQUEST, "Missing required parameter - public_id".into());
    }
    let expected = expected_signature(params);
    if params.get("signature") != Some(&expected) {
        let to_sign: Vec<_> = params.keys().collect();
        return refuse(
            StatusCode::UNAUTHORIZED,
            format!("Invalid Signature {:?} (params {to_sign:?})", params.get("signature")),
        );
    }
    Ok(())
}

async fn upload(shared: Arc<Shared>, Path((cloud, rt)): Path<(String, String)>, mut form: Multipart) -> Response {
    let mut params = BTreeMap::new();
    let mut file = None;
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_string();
        let data = field.bytes().await.unwrap_or_default();
        if name == "file" {
            file = Some(data.to_vec());
        } else {
            params.insert(name, String::from_utf8_lossy(&data).into_owned());
        }
    }
    if let Err(e) = check(&cloud, &rt, &params) {
        return refuse(&shared, e);
    }
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        shared.update(|s| s.rejected.push("upload without file".into()));
        return (StatusCode::BAD_REQUEST, Json(json!({"error": {"message": "Missing required parameter - file"}})))
            .into_response();
    };
    let public_id = params["public_id"].clone();
    let (width, height, format) = if rt == "image" {
        match image::load_from_memory(&file) {
            Ok(img) => {
                let format = image::guess_format(&file).map(|f| f.extensions_str()[0]).unwrap_or("jpg");
                (img.width(), img.height(), format)
            }
            Err(_) => {
                shared.update(|s| s.rejected.push(format!("{public_id}: invalid image file")));
                return (StatusCode::BAD_REQUEST, Json(json!({"error": {"message": "Invalid image file"}})))
                    .into_response();
            }
        }
    } else {
        // Cloudinary measures videos; the double pretends every video is 640×360.
        (640, 360, "mp4")
    };
    let bytes = file.len();
    let kind = params.get("type").cloned().unwrap_or_else(|| "upload".into());
    shared.update(|s| {
        s.uploads.push(public_id.clone());
        s.objects.insert(public_id.clone(), Object { resource_type: rt.clone(), kind: kind.clone(), bytes: file });
    });
    let url = format!("https://res.cloudinary.test/{CLOUD}/{rt}/{kind}/v1/{public_id}.{format}");
    Json(json!({
        "asset_id": "0123456789abcdef",
        "public_id": public_id,
        "version": 1,
        "signature": "not-checked-by-clients",
        "width": width,
        "height": height,
        "format": format,
        "resource_type": rt,
        "created_at": "2026-01-01T00:00:00Z",
        "bytes": bytes,
        "type": kind,
        "url": url.replace("https://", "http://"),
        "secure_url": url,
    }))
    .into_response()
}

async fn destroy(
    shared: Arc<Shared>,
    Path((cloud, rt)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    // An outage answers before looking at the request, like a failing load balancer.
    let outage = shared.update(|s| {
        if s.fail_destroys_left > 0 {
            s.fail_destroys_left -= 1;
            s.failed_destroys += 1;
            Some(if s.failed_destroys % 2 == 1 {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            })
        } else {
            None
        }
    });
    if let Some(status) = outage {
        return (status, Json(json!({"error": {"message": "Service temporarily unavailable"}}))).into_response();
    }
    let params: BTreeMap<String, String> = form.into_iter().collect();
    if let Err(e) = check(&cloud, &rt, &params) {
        return refuse(&shared, e);
    }
    let public_id = params["public_id"].clone();
    let kind = params.get("type").cloned().unwrap_or_else(|| "upload".into());
    let result = shared.update(|s| {
        s.destroyed.push(public_id.clone());
        match s.objects.get(&public_id) {
            Some(o) if o.resource_type == rt && o.kind == kind => {
                s.objects.remove(&public_id);
                "ok"
            }
            _ => "not found",
        }
    });
    Json(json!({ "result": result })).into_response()
}

/// Serves a stored object the way Cloudinary's delivery does for its type: public objects
/// plainly, authenticated ones only with a valid signature or an unexpired token.
async fn deliver(
    shared: Arc<Shared>,
    Path((cloud, rt, kind, rest)): Path<(String, String, String, String)>,
    uri: axum::http::Uri,
) -> Response {
    // Refused deliveries are answers, not API misuse: they are not listed in `rejected`.
    let denied = |why: String| (StatusCode::UNAUTHORIZED, why).into_response();
    if cloud != CLOUD {
        return denied(format!("unknown cloud {cloud}"));
    }
    let (tail, signed) = match rest.strip_prefix("s--").and_then(|r| r.split_once("--/")) {
        Some((sig, tail)) => (tail.to_string(), Some(sig.to_string())),
        None => (rest.clone(), None),
    };
    let Some((public_id, _ext)) = tail.rsplit_once('.') else { return denied(format!("no format in {tail}")) };
    let Some(obj) = shared.state.lock().unwrap().objects.get(public_id).cloned() else {
        return (StatusCode::NOT_FOUND, "Resource not found").into_response();
    };
    if obj.resource_type != rt || obj.kind != kind {
        return (StatusCode::NOT_FOUND, "Resource not found").into_response();
    }
    if kind == "authenticated" {
        let token = uri.query().and_then(|q| q.strip_prefix("__cld_token__=")).map(str::to_string);
        match (signed, token) {
            (Some(sig), _) => {
                use base64::Engine;
                let digest = Sha1::digest(format!("{tail}{API_SECRET}").as_bytes());
                let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)[..8].to_string();
                if sig != expected {
                    return denied(format!("bad delivery signature for {tail}"));
                }
            }
            (None, Some(token)) => {
                use hmac::Mac;
                let Some((exp, hmac)) = token
                    .strip_prefix("exp=")
                    .and_then(|t| t.split_once("~hmac="))
                    .and_then(|(e, h)| Some((e.parse::<i64>().ok()?, h.to_string())))
                else {
                    return denied(format!("malformed token {token}"));
                };
                let key = hex::decode(AUTH_TOKEN_KEY).unwrap();
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
                mac.update(format!("exp={exp}~url={}", uri.path()).as_bytes());
                if hex::encode(mac.finalize().into_bytes()) != hmac {
                    return denied(format!("bad token for {}", uri.path()));
                }
                if exp < chrono::Utc::now().timestamp() {
                    return denied(format!("expired token for {}", uri.path()));
                }
            }
            (None, None) => return denied(format!("authenticated {tail} without signature or token")),
        }
    }
    obj.bytes.into_response()
}
