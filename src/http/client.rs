//! The web client: `web/` compiled into the binary, served at `/` and `/assets/…`.
//!
//! The client is plain modern JavaScript (ES modules, no build step), so the files in
//! `web/` are what the browser runs and `cargo build` is the only build. Pages are
//! client-side routes (`/p/42`, `/chat/9`, `/reset-password?token=…`): a browser
//! navigation (`Accept: text/html`) to any path that is not the API's gets the page, every
//! other unknown path keeps the JSON `404`. The service worker that shows push
//! notifications is `/sw.js`.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::state::AppState;

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $ct:expr) => {
        Asset {
            path: $path,
            content_type: $ct,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the client. A file not listed here is not served (and not compiled in).
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/live.js", JS),
    asset!("js/ui.js", JS),
    asset!("js/feed.js", JS),
    asset!("js/people.js", JS),
    asset!("js/chat.js", JS),
    asset!("js/inbox.js", JS),
    asset!("js/admin.js", JS),
    asset!("js/push.js", JS),
    asset!("sw.js", JS),
];

/// Strong validators, one per asset, computed once: the files never change while the
/// binary runs, so `If-None-Match` answers `304` and a new build invalidates them.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12]))).expect("hex is a valid header")
        })
        .collect()
});

/// What the page may load: its own scripts and styles only (no inline script, no CDN),
/// images and videos from anywhere the API hands out (local files, Cloudinary), sockets to
/// its own origin.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src * data: blob:; \
                   media-src * blob:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; \
                   frame-ancestors 'none'; form-action 'self'";

/// `/`, `/sw.js` and `/assets/{path}`.
pub fn router() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/sw.js", get(service_worker)).route("/assets/{*path}", get(asset))
}

/// The service worker, at the root: a worker controls only the paths under its own, and
/// push notifications open any client route.
async fn service_worker(headers: HeaderMap) -> Response {
    let i = ASSETS.iter().position(|a| a.path == "sw.js").expect("sw.js is an asset");
    serve(i, &headers)
}

async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.path == path) {
        Some(i) => serve(i, &headers),
        None => AppError::NotFound.into_response(),
    }
}

fn serve(i: usize, headers: &HeaderMap) -> Response {
    let (a, etag) = (&ASSETS[i], &ETAGS[i]);
    let mut resp = if headers.get(header::IF_NONE_MATCH) == Some(etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type))], a.body).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, etag.clone());
    // Revalidate every time: names carry no hash, and a 304 costs one round trip.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if a.path == "index.html" {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    resp
}

/// Paths that belong to the server, never to the client's routes.
const SERVER_PREFIXES: &[&str] =
    &["/api/", "/ws", "/socket.io", "/files/", "/assets/", "/metrics", "/health", "/ready"];

/// The fallback: the page for a browser navigating to one of the client's routes, the JSON
/// `404` for everything else.
pub async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let navigation = method == Method::GET
        && headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
        && !SERVER_PREFIXES.iter().any(|p| path.starts_with(p));
    if navigation {
        return serve(0, &headers);
    }
    tracing::debug!(%uri, "no route");
    AppError::NotFound.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_listed_once_and_the_page_comes_first() {
        assert_eq!(ASSETS[0].path, "index.html");
        let mut paths: Vec<_> = ASSETS.iter().map(|a| a.path).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), ASSETS.len());
    }

    #[test]
    fn every_file_in_web_is_served() {
        // A file added to web/ but not to ASSETS would be a 404 in the browser.
        fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, root, out);
                } else {
                    out.push(p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut files = Vec::new();
        walk(&root, &root, &mut files);
        for f in files.iter().filter(|f| !f.ends_with("LICENSE") && !f.ends_with(".md")) {
            assert!(ASSETS.iter().any(|a| a.path == f), "web/{f} is not in ASSETS");
        }
    }
}
