//! Push notifications: the server's Web Push identity.

use base64::Engine;
use reqwest::StatusCode;

use crate::support::{Backend, TestApp, redis_available};

/// The key browsers subscribe with is a P-256 point, and the same after a restart: a new key
/// would silently orphan every browser subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_keeps_one_vapid_key_across_restarts() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (s, v) = app.get("/push/vapid-key", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let key = v["public_key"].as_str().unwrap().to_string();
    let point = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&key).unwrap();
    assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed P-256 point");
    let app = app.restart().await;
    let (_, again) = app.get("/push/vapid-key", None).await;
    assert_eq!(again["public_key"], key.as_str());
}

/// Instances of a cluster sign with one configured key; without one they have no Web Push
/// rather than a key each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_serves_its_configured_key_from_every_instance() {
    if !redis_available().await {
        return;
    }
    let apps = TestApp::redis_cluster(Backend::Sqlite, 1).await.unwrap();
    assert_eq!(apps[0].get("/push/vapid-key", None).await.0, StatusCode::NOT_FOUND);
    let key = chorus::push::Vapid::generate("mailto:ops@example.com").unwrap();
    let private = key.private_base64();
    let apps =
        TestApp::redis_cluster_with(Backend::Sqlite, 2, |c| c.push.vapid_private_key = Some(private)).await.unwrap();
    for app in &apps {
        let (s, v) = app.get("/push/vapid-key", None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["public_key"], key.public_key().as_str());
    }
}

/// A browser's subscription as `PushSubscription.toJSON()` gives it, with real keys.
fn browser_subscription(endpoint: &str) -> serde_json::Value {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key.public_key(), false);
    serde_json::json!({
        "endpoint": endpoint,
        "expirationTime": null,
        "keys": {"p256dh": b64.encode(point.as_bytes()), "auth": b64.encode(rand::random::<[u8; 16]>())},
    })
}

async fn login(app: &TestApp, name: &str) -> crate::support::TestUser {
    let (s, body) = app.post("/auth/login", None, serde_json::json!({"login": name, "password": "password123"})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    crate::support::TestUser::from_auth(&body)
}

crate::both_backends!(devices_belong_to_their_session, device_registrations_are_validated);

/// A device is registered for the session that registered it: listed to its owner only,
/// replaced when registered again, and removed when that session ends (logout, a session
/// ended from another device) — never when another session ends.
async fn devices_belong_to_their_session(b: Backend) {
    use reqwest::Method;
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let laptop = login(&app, "ann").await;
    let phone = login(&app, "ann").await;
    let eve = app.register("eve").await;

    let sub = browser_subscription("http://127.0.0.1:9/push/laptop");
    let (s, d) = app
        .post(
            "/push/subscriptions",
            laptop.bearer(),
            serde_json::json!({"web_push": sub, "label": "Firefox", "kinds": ["message", "mention"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    assert_eq!(
        (d["kind"].as_str(), d["service"].as_str(), d["this_session"].as_bool()),
        (Some("web_push"), Some("127.0.0.1"), Some(true))
    );
    assert_eq!(d["kinds"], serde_json::json!(["mention", "message"]));
    // The same browser registering again replaces its registration.
    let (s, again) = app
        .post(
            "/push/subscriptions",
            laptop.bearer(),
            serde_json::json!({"web_push": browser_subscription("http://127.0.0.1:9/push/laptop")}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, d2) =
        app.post("/push/subscriptions", phone.bearer(), serde_json::json!({"fcm_token": "fcm:phone-token_1"})).await;
    assert_eq!(s, StatusCode::CREATED, "{d2}");

    let (_, list) = app.get("/push/subscriptions", ann.bearer()).await;
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [d2["id"].as_str().unwrap(), again["id"].as_str().unwrap()],
        "newest first, the laptop once: {list}"
    );
    assert!(list.as_array().unwrap().iter().all(|d| d["this_session"] == false && d.get("p256dh").is_none()));
    let (_, theirs) = app.get("/push/subscriptions", eve.bearer()).await;
    assert_eq!(theirs, serde_json::json!([]), "nobody else's devices");
    let path = format!("/push/subscriptions/{}", d2["id"].as_str().unwrap());
    assert_eq!(app.call(Method::DELETE, &path, eve.bearer(), None).await.0, StatusCode::NOT_FOUND);

    // Logging out the laptop removes the laptop's device only.
    assert_eq!(app.post("/auth/logout", laptop.bearer(), serde_json::json!({})).await.0, StatusCode::NO_CONTENT);
    let (_, list) = app.get("/push/subscriptions", ann.bearer()).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["kind"], "fcm");
    // Ending the phone's session from another device removes the phone's.
    let (_, sessions) = app.get("/auth/sessions", ann.bearer()).await;
    let phone_session = sessions.as_array().unwrap().iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = app.call(Method::DELETE, &format!("/auth/sessions/{phone_session}"), ann.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, list) = app.get("/push/subscriptions", ann.bearer()).await;
    assert_eq!(list, serde_json::json!([]));
}

async fn device_registrations_are_validated(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.push.allow_insecure_endpoints = false).await;
    let u = app.register("val").await;
    let post = |body: serde_json::Value| {
        let app = &app;
        let token = u.token.clone();
        async move { app.post("/push/subscriptions", Some(&token), body).await }
    };
    let field = |v: &serde_json::Value| {
        v["error"]["fields"].as_object().map(|f| f.keys().cloned().collect::<Vec<_>>()).unwrap_or_default()
    };
    let (s, v) = post(serde_json::json!({"web_push": browser_subscription("http://10.0.0.1/internal")})).await;
    assert_eq!(
        (s, field(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, vec!["web_push.endpoint".to_string()]),
        "no plain-http endpoints: {v}"
    );
    let mut bad = browser_subscription("https://push.example.net/x");
    bad["keys"]["p256dh"] = "AAAA".into();
    let (s, v) = post(serde_json::json!({"web_push": bad})).await;
    assert_eq!((s, field(&v)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["web_push.keys.p256dh".to_string()]));
    let mut bad = browser_subscription("https://push.example.net/x");
    bad["keys"]["auth"] = "c2hvcnQ".into();
    let (s, v) = post(serde_json::json!({"web_push": bad})).await;
    assert_eq!((s, field(&v)), (StatusCode::UNPROCESSABLE_ENTITY, vec!["web_push.keys.auth".to_string()]));
    let both = serde_json::json!({"web_push": browser_subscription("https://push.example.net/x"), "fcm_token": "abc"});
    assert_eq!(post(both).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(post(serde_json::json!({})).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(post(serde_json::json!({"fcm_token": "has spaces"})).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(post(serde_json::json!({"fcm_token": "ok", "kinds": ["nonsense"]})).await.0, StatusCode::BAD_REQUEST);
    let (s, v) = post(serde_json::json!({"web_push": browser_subscription("https://push.example.net/ok")})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for i in 1..20 {
        assert_eq!(post(serde_json::json!({"fcm_token": format!("t{i}")})).await.0, StatusCode::CREATED);
    }
    assert_eq!(
        post(serde_json::json!({"fcm_token": "one-too-many"})).await.0,
        StatusCode::CONFLICT,
        "20 devices at most"
    );
    // At the limit a device already registered may still register again (it replaces itself).
    assert_eq!(post(serde_json::json!({"fcm_token": "t1"})).await.0, StatusCode::CREATED);
}
