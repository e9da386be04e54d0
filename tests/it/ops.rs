//! Health, readiness, metrics, docs, unknown routes, graceful shutdown.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::support::{Backend, TestApp};

both_backends!(health_ready_and_metrics, unknown_routes_answer_the_json_404);

async fn health_ready_and_metrics(b: Backend) {
    let app = TestApp::spawn(b).await;
    let h: Value = app.http.get(format!("{}/health", app.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(h["status"], "ok");
    let r = app.http.get(format!("{}/ready", app.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r: Value = r.json().await.unwrap();
    assert_eq!(r["database"], "ok");
    assert_eq!(r["redis"], "not_configured");

    app.register("metric_user").await;
    let m = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("chorus_http_requests_total{"), "{m}");
    assert!(m.contains(r#"route="/api/v1/auth/register""#), "requests are labelled by route");
    assert!(m.contains("chorus_http_request_duration_seconds_bucket"), "latency histogram");
    assert!(m.contains("chorus_db_pool_connections"), "pool gauges");
}

async fn unknown_routes_answer_the_json_404(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (s, body) = app.get("/definitely/not/here", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let resp = app.http.get(format!("{}/nope", app.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["content-type"], "application/json");
}

/// Every route of the product contract (DESIGN.md) that exists so far is in the document,
/// with its method; every operation documents at least one error response.
#[tokio::test]
async fn openapi_is_served_and_documents_every_route() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc: Value = app.http.get(app.api("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let expected = [
        ("post", "/api/v1/auth/register"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/refresh"),
        ("post", "/api/v1/auth/logout"),
        ("get", "/api/v1/auth/me"),
        ("put", "/api/v1/auth/password"),
        ("post", "/api/v1/auth/password/forgot"),
        ("post", "/api/v1/auth/password/reset"),
        ("get", "/api/v1/users"),
        ("get", "/api/v1/users/search"),
        ("get", "/api/v1/users/suggestions"),
        ("get", "/api/v1/users/{id}"),
        ("patch", "/api/v1/users/me"),
        ("put", "/api/v1/users/me/settings"),
        ("post", "/api/v1/media"),
        ("get", "/api/v1/media/{id}"),
        ("delete", "/api/v1/media/{id}"),
        ("put", "/api/v1/users/me/avatar"),
        ("get", "/api/v1/users/{id}/posts"),
        ("post", "/api/v1/users/{id}/follow"),
        ("delete", "/api/v1/users/{id}/follow"),
        ("get", "/api/v1/users/{id}/followers"),
        ("get", "/api/v1/users/{id}/following"),
        ("get", "/api/v1/users/me/follow-requests"),
        ("post", "/api/v1/users/me/follow-requests/{id}/approve"),
        ("delete", "/api/v1/users/me/follow-requests/{id}"),
        ("post", "/api/v1/users/{id}/block"),
        ("delete", "/api/v1/users/{id}/block"),
        ("post", "/api/v1/users/{id}/mute"),
        ("delete", "/api/v1/users/{id}/mute"),
        ("post", "/api/v1/posts"),
        ("get", "/api/v1/posts"),
        ("get", "/api/v1/posts/{id}"),
        ("patch", "/api/v1/posts/{id}"),
        ("delete", "/api/v1/posts/{id}"),
        ("post", "/api/v1/posts/{id}/save"),
        ("delete", "/api/v1/posts/{id}/save"),
        ("get", "/api/v1/users/me/saved"),
        ("get", "/api/v1/reaction-types"),
        ("put", "/api/v1/posts/{id}/reaction"),
        ("delete", "/api/v1/posts/{id}/reaction"),
        ("get", "/api/v1/posts/{id}/reactions"),
        ("put", "/api/v1/comments/{id}/reaction"),
        ("delete", "/api/v1/comments/{id}/reaction"),
        ("get", "/api/v1/comments/{id}/reactions"),
        ("post", "/api/v1/posts/{id}/comments"),
        ("get", "/api/v1/posts/{id}/comments"),
        ("get", "/api/v1/comments/{id}/replies"),
        ("patch", "/api/v1/comments/{id}"),
        ("delete", "/api/v1/comments/{id}"),
        ("get", "/api/v1/feed"),
        ("get", "/api/v1/explore"),
        ("get", "/api/v1/tags/{tag}/posts"),
        ("get", "/health"),
        ("get", "/ready"),
        ("get", "/metrics"),
    ];
    for (method, path) in expected {
        let op = &paths.get(path).unwrap_or_else(|| panic!("{path} missing from OpenAPI"))[method];
        assert!(op.is_object(), "{method} {path} missing");
        let responses = op["responses"].as_object().unwrap();
        if path.starts_with("/api/v1") {
            assert!(responses.keys().any(|k| k.starts_with('4')), "{method} {path} documents no error");
        }
    }
    // Every operation has a documented success response and every schema it references exists.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let text = doc.to_string();
    for r in text.match_indices("#/components/schemas/") {
        let name: String = text[r.0 + 21..].chars().take_while(|c| *c != '"').collect();
        assert!(schemas.contains_key(&name), "dangling schema reference {name}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert_eq!(schemas["ErrorBody"]["properties"]["error"]["$ref"], "#/components/schemas/ErrorDetail");
}

/// The interactive docs load nothing from the internet: every script and stylesheet is
/// served by Chorus itself.
#[tokio::test]
async fn api_docs_work_offline() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let resp = app.http.get(format!("{}/api-docs/", app.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let url: String = html[i + attr.len()..].chars().take_while(|c| *c != '"').collect();
            assert!(
                !url.starts_with("http://") && !url.starts_with("https://") && !url.starts_with("//"),
                "external asset {url}"
            );
            assets.push(url);
        }
    }
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{assets:?}");
    for a in assets {
        let url = format!("{}/api-docs/{}", app.base, a.trim_start_matches("./"));
        let r = app.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
    }
    let init = app
        .http
        .get(format!("{}/api-docs/swagger-initializer.js", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/api/v1/openapi.json"), "{init}");
}

/// SIGTERM drains and exits 0 (the real binary, as deployed).
#[tokio::test]
async fn sigterm_shuts_down_gracefully_with_exit_code_zero() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
        .env("CHORUS_LISTEN", format!("127.0.0.1:{port}"))
        .env("CHORUS_DATA_DIR", dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    // Wait for readiness by asking it (the server answers when it is up).
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{base}/ready")).send().await
            && r.status() == StatusCode::OK
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "server became ready");
    let pid = child.id().unwrap();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait()).await.expect("exits in time").unwrap();
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
}

/// `chorus seed` (and every other command) works on a data directory that does not exist
/// yet, as on a fresh checkout, and seeding twice changes nothing.
#[test]
fn seed_works_on_a_fresh_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh").join("data");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
            .env("CHORUS_DATA_DIR", &data)
            .env("CHORUS_LOG", "warn")
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .args(["seed", "--users", "5"])
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(data.join("chorus.db").exists());
    let again = run();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
}
