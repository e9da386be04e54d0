//! Schema-driven fuzzing of the whole served OpenAPI document with schemathesis (from PyPI),
//! authenticated as a real user: no server error, no status an operation does not document,
//! no response that violates its schema or content type.
//!
//! `POST /auth/logout` and `PUT /auth/password` end the fuzzer's session, so they run in a
//! second pass of their own. Skips loudly without `schemathesis` on `PATH` (`pip install
//! schemathesis`); fails instead when `CI=true`.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, TestApp, skip_or_fail};

both_backends!(the_served_openapi_survives_schemathesis);

const SESSION_ENDERS: [&str; 2] = ["/api/v1/auth/logout", "/api/v1/auth/password"];

async fn the_served_openapi_survives_schemathesis(b: Backend) {
    let have = tokio::process::Command::new("schemathesis").arg("--version").output().await;
    if !matches!(have, Ok(o) if o.status.success()) {
        skip_or_fail("schemathesis (pip install schemathesis)");
        return;
    }
    let app = TestApp::spawn_with(b, |c| {
        // The fuzzer calls the auth endpoints from one address thousands of times.
        c.rate_limit.auth_per_ip_per_minute = 1_000_000;
        c.rate_limit.auth_ip_burst = 1_000_000;
        c.rate_limit.auth_per_account_per_minute = 1_000_000;
        c.rate_limit.auth_account_burst = 1_000_000;
    })
    .await;
    let (s, body) = app
        .post(
            "/auth/register",
            None,
            json!({"username": "fuzzer", "email": "fuzzer@example.com", "password": "password123"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    let mut main_pass: Vec<String> = Vec::new();
    let mut last_pass: Vec<String> = Vec::new();
    for p in SESSION_ENDERS {
        main_pass.extend(["--exclude-path".into(), p.into()]);
        last_pass.extend(["--include-path".into(), p.into()]);
    }
    for (name, filter) in [("main", main_pass), ("session-ending", last_pass)] {
        let out = tokio::process::Command::new("schemathesis")
            .arg("run")
            .arg(app.api("/openapi.json"))
            .args(["--url", &app.base])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(filter)
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance",
                "--max-examples",
                "20",
                "--workers",
                "2",
                "--seed",
                "20261201",
                "--no-color",
            ])
            .current_dir(app.dir.path())
            .output()
            .await
            .expect("schemathesis runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let summary: String = text.lines().skip_while(|l| !l.contains("SUMMARY")).collect::<Vec<_>>().join("\n");
        eprintln!("schemathesis ({name} pass, {b:?}):\n{summary}");
        assert!(
            out.status.success(),
            "schemathesis found problems ({name} pass):\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
