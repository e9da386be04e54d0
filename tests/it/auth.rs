//! Accounts, tokens, sessions, passwords.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, TestApp, TestUser, smtp};

both_backends!(
    register_login_and_me,
    registration_validates_every_field,
    usernames_and_emails_are_unique_case_insensitively,
    refresh_rotates_and_reuse_revokes_the_family,
    logout_revokes_the_access_token_at_once,
    password_change_ends_other_sessions,
    password_reset_by_email_is_single_use,
    forgot_password_never_reveals_accounts,
    login_is_rate_limited_per_account,
    malformed_and_oversized_bodies_get_the_error_shape,
);

async fn register_login_and_me(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.register("Alice_1").await;
    assert_eq!(alice.username, "alice_1", "usernames are stored lower-case");

    let (s, me) = app.get("/auth/me", alice.bearer()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["id"], alice.id);
    assert_eq!(me["email"], "alice_1@example.com");
    assert_eq!(me["settings"]["notifications"]["follow"]["in_app"], true);

    for login in ["alice_1", "ALICE_1", "alice_1@example.com", "Alice_1@Example.com"] {
        let (s, body) = app.post("/auth/login", None, json!({"login": login, "password": "password123"})).await;
        assert_eq!(s, StatusCode::OK, "{login}: {body}");
        assert_eq!(body["user"]["id"], alice.id);
        assert_eq!(body["expires_in"], 900);
    }
    let (s, body) = app.post("/auth/login", None, json!({"login": "alice_1", "password": "wrong password"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (s, _) = app.post("/auth/login", None, json!({"login": "nobody", "password": "password123"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, body) = app.get("/auth/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (s, _) = app.get("/auth/me", Some("not.a.jwt")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

async fn registration_validates_every_field(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (s, body) =
        app.post("/auth/register", None, json!({"username": "a!", "email": "nope", "password": "short"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "validation_failed");
    let fields = &body["error"]["fields"];
    assert!(fields["username"].is_string() && fields["email"].is_string() && fields["password"].is_string(), "{body}");

    let cases = [
        (json!({"username": "ab", "email": "x@y.io", "password": "password123"}), "username"),
        (json!({"username": "a".repeat(31), "email": "x@y.io", "password": "password123"}), "username"),
        (json!({"username": "good_name", "email": "x@y", "password": "password123"}), "email"),
        (json!({"username": "good_name", "email": "x@y.io", "password": "1234567"}), "password"),
        (
            json!({"username": "good_name", "email": "x@y.io", "password": "password123", "display_name": "d".repeat(51)}),
            "display_name",
        ),
    ];
    for (req, field) in cases {
        let (s, body) = app.post("/auth/register", None, req.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{req}");
        assert!(body["error"]["fields"][field].is_string(), "{field}: {body}");
    }
    let (s, body) = app.post("/auth/register", None, json!({"username": "x"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "missing fields make the body malformed: {body}");
    assert_eq!(body["error"]["code"], "bad_request");
}

async fn usernames_and_emails_are_unique_case_insensitively(b: Backend) {
    let app = TestApp::spawn(b).await;
    app.register("bob").await;
    let (s, body) = app
        .post(
            "/auth/register",
            None,
            json!({"username": "BOB", "email": "other@example.com", "password": "password123"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "conflict");
    assert!(body["error"]["fields"]["username"].is_string(), "{body}");
    let (s, body) = app
        .post(
            "/auth/register",
            None,
            json!({"username": "bobby", "email": "BOB@example.com", "password": "password123"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(body["error"]["fields"]["email"].is_string(), "{body}");
}

async fn refresh_rotates_and_reuse_revokes_the_family(b: Backend) {
    let app = TestApp::spawn(b).await;
    let carol = app.register("carol").await;

    let (s, r1) = app.post("/auth/refresh", None, json!({"refresh_token": carol.refresh})).await;
    assert_eq!(s, StatusCode::OK, "{r1}");
    let t1 = TestUser::from_auth(&r1);
    assert_ne!(t1.refresh, carol.refresh, "refresh tokens rotate");
    assert_ne!(t1.token, carol.token);
    let (s, _) = app.get("/auth/me", t1.bearer()).await;
    assert_eq!(s, StatusCode::OK);

    // A second session that must survive the theft of the first one.
    let (_, other) = app.post("/auth/login", None, json!({"login": "carol", "password": "password123"})).await;
    let other = TestUser::from_auth(&other);

    // Replaying the first (already used) token: reuse → the whole family dies.
    let (s, body) = app.post("/auth/refresh", None, json!({"refresh_token": carol.refresh})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    let (s, _) = app.post("/auth/refresh", None, json!({"refresh_token": t1.refresh})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the newest token of the family is revoked too");
    let (s, _) = app.get("/auth/me", t1.bearer()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "access tokens of the family are revoked");

    let (s, _) = app.get("/auth/me", other.bearer()).await;
    assert_eq!(s, StatusCode::OK, "other sessions are untouched");
    let (s, _) = app.post("/auth/refresh", None, json!({"refresh_token": other.refresh})).await;
    assert_eq!(s, StatusCode::OK);

    let (s, _) = app.post("/auth/refresh", None, json!({"refresh_token": "made-up"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

async fn logout_revokes_the_access_token_at_once(b: Backend) {
    let app = TestApp::spawn(b).await;
    let dan = app.register("dan").await;
    let (s, _) = app.call(Method::POST, "/auth/logout", dan.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, body) = app.get("/auth/me", dan.bearer()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], "access token revoked");
    let (s, _) = app.post("/auth/refresh", None, json!({"refresh_token": dan.refresh})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the session's refresh token is revoked");
}

async fn password_change_ends_other_sessions(b: Backend) {
    let app = TestApp::spawn(b).await;
    let erin = app.register("erin").await;
    let (_, other) = app.post("/auth/login", None, json!({"login": "erin", "password": "password123"})).await;
    let other = TestUser::from_auth(&other);

    let (s, body) = app
        .call(
            Method::PUT,
            "/auth/password",
            erin.bearer(),
            Some(json!({"current_password": "wrong-one", "new_password": "new password 1"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["fields"]["current_password"].is_string());

    let (s, _) = app
        .call(
            Method::PUT,
            "/auth/password",
            erin.bearer(),
            Some(json!({"current_password": "password123", "new_password": "new password 1"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/auth/me", erin.bearer()).await.0, StatusCode::OK, "the current session stays");
    assert_eq!(app.get("/auth/me", other.bearer()).await.0, StatusCode::UNAUTHORIZED, "other sessions end");
    assert_eq!(
        app.post("/auth/refresh", None, json!({"refresh_token": other.refresh})).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post("/auth/login", None, json!({"login": "erin", "password": "password123"})).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post("/auth/login", None, json!({"login": "erin", "password": "new password 1"})).await.0,
        StatusCode::OK
    );
}

async fn password_reset_by_email_is_single_use(b: Backend) {
    let (smtp_url, mut inbox) = smtp::start().await;
    let app = TestApp::spawn_with(b, |c| c.smtp_url = Some(smtp_url)).await;
    let fay = app.register("fay").await;

    let (s, _) = app.post("/auth/password/forgot", None, json!({"email": "FAY@example.com"})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let mail = tokio::time::timeout(Duration::from_secs(10), inbox.recv()).await.expect("reset mail arrives").unwrap();
    assert_eq!(mail.to, vec!["fay@example.com".to_string()]);
    let body = mail.body();
    let token = body
        .lines()
        .skip_while(|l| !l.starts_with("Your reset token"))
        .nth(1)
        .map(|l| l.trim().to_string())
        .expect("token in mail");
    assert!(body.contains(&format!("reset-password?token={token}")), "link carries the token: {body}");
    assert!(!body.contains(":0/"), "links use the real address: {body}");

    let (s, body) = app.post("/auth/password/reset", None, json!({"token": token, "new_password": "short"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (s, _) =
        app.post("/auth/password/reset", None, json!({"token": token, "new_password": "brand new pass"})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) =
        app.post("/auth/password/reset", None, json!({"token": token, "new_password": "another pass 2"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a reset token works once");

    assert_eq!(app.get("/auth/me", fay.bearer()).await.0, StatusCode::UNAUTHORIZED, "reset ends every session");
    assert_eq!(
        app.post("/auth/login", None, json!({"login": "fay", "password": "brand new pass"})).await.0,
        StatusCode::OK
    );
}

async fn forgot_password_never_reveals_accounts(b: Backend) {
    let (smtp_url, mut inbox) = smtp::start().await;
    let app = TestApp::spawn_with(b, |c| c.smtp_url = Some(smtp_url)).await;
    let (s, body) = app.post("/auth/password/forgot", None, json!({"email": "ghost@example.com"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let (s, _) = app.post("/auth/password/forgot", None, json!({"email": "not-an-email"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Then a real account: its mail is the first (and only) one to arrive.
    app.register("gus").await;
    assert_eq!(
        app.post("/auth/password/forgot", None, json!({"email": "gus@example.com"})).await.0,
        StatusCode::ACCEPTED
    );
    let mail = tokio::time::timeout(Duration::from_secs(10), inbox.recv()).await.unwrap().unwrap();
    assert_eq!(mail.to, vec!["gus@example.com".to_string()], "no mail was sent for the unknown address");
}

async fn login_is_rate_limited_per_account(b: Backend) {
    let app = TestApp::spawn_with(b, |c| {
        c.rate_limit.auth_per_account_per_minute = 3;
        c.rate_limit.auth_account_burst = 3;
    })
    .await;
    app.register("hal").await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let resp = app
            .http
            .post(app.api("/auth/login"))
            .json(&json!({"login": "hal", "password": "wrong password"}))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status());
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
        }
    }
    assert_eq!(&statuses[..3], &[StatusCode::UNAUTHORIZED; 3]);
    assert_eq!(&statuses[3..], &[StatusCode::TOO_MANY_REQUESTS; 2]);
    assert!(retry_after.is_some_and(|s| s >= 1), "Retry-After is set");
    // Another account is not affected.
    app.register("ivy").await;
    assert_eq!(
        app.post("/auth/login", None, json!({"login": "ivy", "password": "password123"})).await.0,
        StatusCode::OK
    );
}

async fn malformed_and_oversized_bodies_get_the_error_shape(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.body_limit_bytes = 4096).await;
    let resp = app
        .http
        .post(app.api("/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");

    let resp = app.http.post(app.api("/auth/login")).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "JSON endpoints need a JSON content type");

    let huge = json!({"login": "x".repeat(10_000), "password": "y"});
    let resp = app.http.post(app.api("/auth/login")).json(&huge).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");

    let (s, body) = app.post("/auth/login", None, json!({"login": 5, "password": []})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "bad_request");
}
