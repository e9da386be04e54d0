//! Push notifications: the server's Web Push identity, the device registry, and delivery
//! through the stand-in push services of `support::pushsvc` (Web Push and FCM).

use std::time::Duration;

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::posts::{follow, jobs_drained, new_post};
use crate::support::pushsvc::{Answer, push_service};
use crate::support::ws::WsClient;
use crate::support::{Backend, TestApp, TestUser, eventually, redis_available};

const WAIT: Duration = Duration::from_secs(20);

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

crate::both_backends!(
    devices_belong_to_their_session,
    device_registrations_are_validated,
    an_offline_browser_gets_each_notification_encrypted_signed_and_grouped,
    an_app_gets_fcm_messages_under_one_cached_access_token,
    settings_and_device_kinds_decide_what_is_pushed,
    a_subscription_its_service_forgot_is_removed,
    a_push_whose_notification_went_is_not_sent,
    a_muted_conversation_pushes_nothing,
    a_stale_push_of_a_growing_group_is_not_sent,
    a_push_service_that_never_answers_is_retried,
    a_push_is_checked_again_when_it_is_sent,
    throttling_and_outages_are_retried_without_doubling,
    across_instances_each_device_gets_each_notification_once,
);

/// A device is registered for the session that registered it: listed to its owner only,
/// replaced when registered again, and removed when that session ends (logout, a session
/// ended from another device) — never when another session ends.
async fn devices_belong_to_their_session(b: Backend) {
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

// ---- delivery ----------------------------------------------------------------------------

/// An instance with ann (who gets the pushes) and bob.
async fn ann_and_bob(b: Backend) -> (TestApp, TestUser, TestUser) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    (app, ann, bob)
}

/// Registers `body` as a device of `u`; its id.
async fn register_device(app: &TestApp, u: &TestUser, body: Value) -> String {
    let (s, d) = app.post("/push/subscriptions", u.bearer(), body).await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    d["id"].as_str().unwrap().to_string()
}

async fn react(app: &TestApp, u: &TestUser, post: &str) {
    let (s, v) =
        app.call(Method::PUT, &format!("/posts/{post}/reaction"), u.bearer(), Some(json!({"type": "love"}))).await;
    assert!(s.is_success(), "{s} {v}");
}

/// Waits until `device` received `n` pushes; they are returned.
async fn pushes(device: &str, n: usize) -> Vec<crate::support::pushsvc::Push> {
    let svc = push_service();
    svc.wait_for(WAIT, &format!("{n} pushes to {device}"), |s| s.of(device).len() >= n).await;
    svc.read(|s| s.of(device).to_vec())
}

/// A browser without an open socket gets each notification as a Web Push: signed with
/// VAPID, encrypted to the browser's key (the service decrypts it), with `TTL`, `Urgency`
/// and the group as `Topic`; a second actor's push carries the grouped sentence under the
/// same `Topic`, so the device shows one notification, not two.
async fn an_offline_browser_gets_each_notification_encrypted_signed_and_grouped(b: Backend) {
    let (app, ann, bob) = ann_and_bob(b).await;
    let cat = app.register("cat").await;
    let browser = push_service().browser("ann");
    let key = app.get("/push/vapid-key", None).await.1["public_key"].as_str().unwrap().to_string();
    push_service().subscribed_with(&browser.device, &key);
    register_device(&app, &ann, json!({"web_push": browser.subscription(), "label": "Firefox"})).await;
    let post = new_post(&app, &ann, "sunset").await;

    react(&app, &bob, &post).await;
    let first = pushes(&browser.device, 1).await.remove(0);
    assert_eq!(first.payload["title"], "bob reacted to your post");
    assert_eq!(first.payload["url"], format!("/p/{post}"));
    assert_eq!(first.payload["kind"], "reaction");
    assert_eq!((first.urgency.as_str(), first.ttl.as_str()), ("low", "86400"));
    assert_eq!(first.payload["tag"], first.topic.as_str());
    let (_, list) = app.get("/notifications", ann.bearer()).await;
    assert_eq!(first.payload["notification_id"], list["items"][0]["id"], "names the in-app notification");

    react(&app, &cat, &post).await;
    let second = pushes(&browser.device, 2).await.remove(1);
    assert_eq!(second.payload["title"], "cat and 1 other reacted to your post");
    assert_eq!(second.topic, first.topic, "one group, one Topic");
    assert_eq!(push_service().read(|s| s.showing(&browser.device)), 1, "the newer replaced the older");

    let (s, _) = app.post(&format!("/posts/{post}/comments"), bob.bearer(), json!({"body": "what a sky"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let third = pushes(&browser.device, 3).await.remove(2);
    assert_eq!(
        (third.payload["title"].as_str(), third.payload["body"].as_str(), third.urgency.as_str()),
        (Some("bob commented on your post"), Some("what a sky"), "normal")
    );
    assert_ne!(third.topic, first.topic);
    assert_eq!(push_service().read(|s| s.showing(&browser.device)), 2);
}

/// An app's FCM token gets v1 messages: notification and data parts, the group as
/// `collapse_key`/tag; the OAuth access token (from a signed service-account assertion,
/// checked by the stand-in) is fetched once and reused.
async fn an_app_gets_fcm_messages_under_one_cached_access_token(b: Backend) {
    let (app, ann, bob) = ann_and_bob(b).await;
    let cat = app.register("cat").await;
    let token = push_service().fcm_token("ann-phone");
    register_device(&app, &ann, json!({"fcm_token": token, "label": "Pixel"})).await;
    let conv = crate::chat::dm(&app, &bob, &ann).await;
    crate::chat::say(&app, &bob, &conv, "dinner at 8?").await;
    let m = pushes(&token, 1).await.remove(0);
    assert_eq!(m.service, "fcm");
    let msg = &m.payload;
    assert_eq!(msg["token"], token.as_str());
    assert_eq!(msg["notification"]["title"], "bob sent you a message");
    assert_eq!(msg["notification"]["body"], "dinner at 8?");
    assert_eq!(msg["data"]["url"], format!("/chat/{conv}"));
    assert_eq!(msg["data"]["kind"], "message");
    assert_eq!(msg["android"]["notification"]["tag"], m.topic.as_str());
    assert_eq!(msg["apns"]["headers"]["apns-collapse-id"], m.topic.as_str());
    assert_eq!(m.urgency, "high");

    follow(&app, &cat, &ann).await;
    let f = pushes(&token, 2).await.remove(1);
    assert_eq!(f.payload["notification"]["title"], "cat started following you");
    assert_eq!(f.payload["data"]["url"], "/u/cat");
    let bearers = push_service().read(|s| s.bearers_of(&token));
    assert_eq!(bearers.len(), 2);
    assert_eq!(bearers[0], bearers[1], "one access token for both sends");
}

/// Turning `push` off for a kind stops its pushes (in-app stays); `push_previews: false`
/// pushes "New message from bob" without the text; a device that chose kinds gets only
/// those.
async fn settings_and_device_kinds_decide_what_is_pushed(b: Backend) {
    let (app, ann, bob) = ann_and_bob(b).await;
    let cat = app.register("cat").await;
    let all = push_service().browser("ann-all");
    let chats = push_service().fcm_token("ann-chats-only");
    register_device(&app, &ann, json!({"web_push": all.subscription()})).await;
    register_device(&app, &ann, json!({"fcm_token": chats, "kinds": ["message"]})).await;
    let (s, v) = app
        .call(
            Method::PUT,
            "/users/me/settings",
            ann.bearer(),
            Some(json!({"notifications": {"reaction": {"push": false}}, "push_previews": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["notifications"]["reaction"], json!({"in_app": true, "email": false, "push": false}));
    assert_eq!(v["push_previews"], false);
    assert_eq!(app.get("/auth/me", ann.bearer()).await.1["settings"]["push_previews"], false);

    let post = new_post(&app, &ann, "p").await;
    react(&app, &bob, &post).await;
    let conv = crate::chat::dm(&app, &bob, &ann).await;
    crate::chat::say(&app, &bob, &conv, "the secret plan").await;
    let on_phone = pushes(&chats, 1).await.remove(0);
    assert_eq!(on_phone.payload["notification"]["title"], "New message from bob");
    assert!(on_phone.payload["notification"].get("body").is_none(), "{}", on_phone.payload);
    let in_browser = pushes(&all.device, 1).await.remove(0);
    assert_eq!(in_browser.payload["title"], "New message from bob");
    assert_eq!(in_browser.payload["body"], "");
    assert!(!in_browser.payload.to_string().contains("secret"));
    // A follow reaches the browser only; the reaction reached neither.
    follow(&app, &cat, &ann).await;
    let follow = pushes(&all.device, 2).await.remove(1);
    assert_eq!(follow.payload["title"], "cat started following you");
    jobs_drained(&app).await;
    assert_eq!(push_service().read(|s| (s.of(&all.device).len(), s.of(&chats).len())), (2, 1));
    let (_, n) = app.get("/notifications", ann.bearer()).await;
    assert!(n["items"].as_array().unwrap().iter().any(|n| n["kind"] == "reaction"), "in-app still has it");
}

/// A push waiting for its retry is not sent once what it describes is gone: the post is
/// deleted while the push service's `Retry-After` runs.
async fn a_push_whose_notification_went_is_not_sent(b: Backend) {
    let (app, ann, bob) = ann_and_bob(b).await;
    let browser = push_service().browser("ann-withdrawn");
    push_service().script(&browser.device, &[Answer::Throttle(2)]);
    register_device(&app, &ann, json!({"web_push": browser.subscription()})).await;
    let post = new_post(&app, &ann, "soon gone").await;
    react(&app, &bob, &post).await;
    pushes(&browser.device, 1).await;
    assert_eq!(app.call(Method::DELETE, &format!("/posts/{post}"), ann.bearer(), None).await.0, StatusCode::NO_CONTENT);
    jobs_drained(&app).await;
    assert_eq!(push_service().read(|s| (s.of(&browser.device).len(), s.showing(&browser.device))), (1, 0));
}

/// A push service that says the subscription is gone (Web Push 410, FCM `UNREGISTERED`)
/// gets the device removed: no further sends to it.
async fn a_subscription_its_service_forgot_is_removed(b: Backend) {
    let (app, ann, bob) = ann_and_bob(b).await;
    let browser = push_service().browser("ann-gone");
    let token = push_service().fcm_token("ann-uninstalled");
    push_service().script(&browser.device, &[Answer::Gone]);
    push_service().script(&token, &[Answer::Gone]);
    register_device(&app, &ann, json!({"web_push": browser.subscription()})).await;
    register_device(&app, &ann, json!({"fcm_token": token})).await;
    follow(&app, &bob, &ann).await;
    pushes(&browser.device, 1).await;
    pushes(&token, 1).await;
    let list = eventually(WAIT, || async {
        let (_, l) = app.get("/push/subscriptions", ann.bearer()).await;
        l.as_array().unwrap().is_empty().then_some(l)
    })
    .await;
    assert_eq!(list, json!([]));
    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("chorus_push_subscriptions_removed_total"), "counted");
}

/// 429 with `Retry-After` is honoured (the queue's own backoff here is 50 ms), a 500 is
/// retried, and the device ends up showing the notification once.
async fn throttling_and_outages_are_retried_without_doubling(b: Backend) {
    let (app, ann, bob) = ann_and_bob(b).await;
    let browser = push_service().browser("ann-busy");
    let token = push_service().fcm_token("ann-busy-phone");
    push_service().script(&browser.device, &[Answer::Throttle(2), Answer::Fail, Answer::Accept]);
    push_service().script(&token, &[Answer::Throttle(1), Answer::Accept]);
    register_device(&app, &ann, json!({"web_push": browser.subscription()})).await;
    register_device(&app, &ann, json!({"fcm_token": token})).await;
    follow(&app, &bob, &ann).await;
    let wp = pushes(&browser.device, 3).await;
    assert!(wp[1].at - wp[0].at >= Duration::from_secs(2), "waited for Retry-After: {:?}", wp[1].at - wp[0].at);
    assert!(wp.iter().all(|p| p.topic == wp[0].topic && p.payload == wp[0].payload), "the same push each time");
    let fcm = pushes(&token, 2).await;
    assert!(fcm[1].at - fcm[0].at >= Duration::from_secs(1));
    jobs_drained(&app).await;
    assert_eq!(push_service().read(|s| (s.of(&browser.device).len(), s.showing(&browser.device))), (3, 1));
    assert_eq!(push_service().read(|s| s.of(&token).len()), 2);
}

/// Two instances on one database and Redis, ann on one and bob on the other: while ann has
/// a socket open anywhere her devices get nothing; once it closes each device gets each
/// notification exactly once, whichever instance's worker sends it; after she logs out the
/// devices that session registered get nothing.
async fn across_instances_each_device_gets_each_notification_once(b: Backend) {
    let key = chorus::push::Vapid::generate("mailto:ops@example.com").unwrap().private_base64();
    let Some(apps) = TestApp::redis_cluster_with(b, 2, |c| c.push.vapid_private_key = Some(key)).await else { return };
    let (a, bb) = (&apps[0], &apps[1]);
    let ann = a.register("ann").await;
    let bob = bb.register("bob").await;
    let browser = push_service().browser("ann-cluster");
    // Subscribed with the key instance b serves; instance a's worker may be the one signing.
    let served = bb.get("/push/vapid-key", None).await.1["public_key"].as_str().unwrap().to_string();
    push_service().subscribed_with(&browser.device, &served);
    let phone = push_service().fcm_token("ann-cluster-phone");
    register_device(a, &ann, json!({"web_push": browser.subscription()})).await;
    register_device(bb, &ann, json!({"fcm_token": phone})).await;
    let bobs = push_service().browser("bob-cluster");
    register_device(bb, &bob, json!({"web_push": bobs.subscription()})).await;
    let post = new_post(a, &ann, "cluster").await;

    // ann online on instance a: bob's reaction on b reaches her in the app only.
    let ws = WsClient::connect(&a.base, &ann.token).await;
    let ann_id: chorus::domain::Id = ann.id.parse().unwrap();
    react(bb, &bob, &post).await;
    jobs_drained(a).await;
    let (_, n) = bb.get("/notifications", ann.bearer()).await;
    assert_eq!(n["items"].as_array().unwrap().len(), 1, "the notification was made");
    assert_eq!(push_service().read(|s| (s.of(&browser.device).len(), s.of(&phone).len())), (0, 0));

    // Offline: one push per device per notification.
    drop(ws);
    eventually(WAIT, || async { bb.state.presence.online_among(&[ann_id]).await.unwrap().is_empty().then_some(()) })
        .await;
    follow(bb, &bob, &ann).await;
    let conv = crate::chat::dm(a, &ann, &bob).await;
    crate::chat::say(a, &ann, &conv, "hello bob").await;
    pushes(&browser.device, 1).await;
    pushes(&phone, 1).await;
    pushes(&bobs.device, 1).await;
    jobs_drained(a).await;
    let counts = push_service().read(|s| (s.of(&browser.device).len(), s.of(&phone).len(), s.of(&bobs.device).len()));
    assert_eq!(counts, (1, 1, 1), "exactly once per device");

    // Logged out: the devices of that session are gone, and nothing more is pushed to them.
    assert_eq!(a.post("/auth/logout", ann.bearer(), json!({})).await.0, StatusCode::NO_CONTENT);
    crate::chat::say(bb, &bob, &conv, "still there?").await;
    let (s, _) = bb.post(&format!("/posts/{post}/comments"), bob.bearer(), json!({"body": "nice"})).await;
    assert_eq!(s, StatusCode::CREATED);
    jobs_drained(a).await;
    assert_eq!(push_service().read(|s| (s.of(&browser.device).len(), s.of(&phone).len())), (1, 1));
}

/// The real binary is SIGKILLed after the push service accepted a push but before the
/// instance read the answer (so before the job completed): after its restart the job's
/// lease runs out and the push is sent again with the same `Topic`, so the device shows it
/// once — nothing lost, nothing doubled — and the completed job is not run a third time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_neither_loses_nor_doubles_a_push() {
    let mut bin = crate::support::Binary::start(&[("CHORUS_PUSH__ALLOW_INSECURE_ENDPOINTS", "true")]).await;
    let ann = bin.register("ann").await;
    let bob = bin.register("bob").await;
    let browser = push_service().browser("ann-killed");
    push_service().script(&browser.device, &[Answer::AcceptAndStall]);
    let r = bin
        .http
        .post(bin.api("/push/subscriptions"))
        .bearer_auth(&ann.token)
        .json(&json!({"web_push": browser.subscription()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = bin.http.post(bin.api(&format!("/users/{}/follow", ann.id))).bearer_auth(&bob.token).send().await.unwrap();
    assert!(r.status().is_success());

    pushes(&browser.device, 1).await;
    bin.kill();
    bin.restart().await;
    let again = pushes(&browser.device, 2).await;
    assert_eq!(again[0].topic, again[1].topic, "the resend carries the same Topic");
    assert_eq!(again[0].payload, again[1].payload);
    // The job is done (completed jobs leave the table) once the resend was answered, and
    // a done job cannot run again.
    let db = bin.db().await;
    eventually(WAIT, || async {
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'send_push'").fetch_one(&db).await.unwrap();
        (left == 0).then_some(())
    })
    .await;
    assert_eq!(push_service().read(|s| (s.of(&browser.device).len(), s.showing(&browser.device))), (2, 1));
}

/// A conversation its member muted notifies them of nothing — no push, no in-app
/// notification — while its messages still arrive and count as unread; unmuted, they do
/// again.
async fn a_muted_conversation_pushes_nothing(b: Backend) {
    let (app, ann, bob) = ann_and_bob(b).await;
    let phone = push_service().fcm_token("ann-muting");
    register_device(&app, &ann, json!({"fcm_token": phone})).await;
    let conv = crate::chat::dm(&app, &bob, &ann).await;
    let mute = format!("/conversations/{conv}/mute");
    assert_eq!(app.call(Method::PUT, &mute, ann.bearer(), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.call(Method::PUT, &mute, ann.bearer(), None).await.0, StatusCode::NO_CONTENT, "idempotent");
    crate::chat::say(&app, &bob, &conv, "psst").await;
    jobs_drained(&app).await;
    assert!(push_service().read(|s| s.of(&phone).is_empty()));
    let (_, n) = app.get("/notifications", ann.bearer()).await;
    assert_eq!(n["items"], json!([]), "no in-app notification either");
    let (_, v) = app.get(&format!("/conversations/{conv}"), ann.bearer()).await;
    assert_eq!((v["muted"].as_bool(), v["unread_count"].as_i64()), (Some(true), Some(1)), "{v}");
    let (_, theirs) = app.get(&format!("/conversations/{conv}"), bob.bearer()).await;
    assert_eq!(theirs["muted"], false, "muting is the member's own");

    assert_eq!(app.call(Method::DELETE, &mute, ann.bearer(), None).await.0, StatusCode::NO_CONTENT);
    crate::chat::say(&app, &bob, &conv, "hello?").await;
    let p = pushes(&phone, 1).await.remove(0);
    assert_eq!(p.payload["notification"]["body"], "hello?");
}

/// A push held back by the service's `Retry-After` while more people react is not sent
/// with its stale sentence: the newer pushes of the group carry the count, and the device
/// ends on the latest.
async fn a_stale_push_of_a_growing_group_is_not_sent(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let browser = push_service().browser("ann-popular");
    push_service().script(&browser.device, &[Answer::Throttle(1)]);
    register_device(&app, &ann, json!({"web_push": browser.subscription()})).await;
    let post = new_post(&app, &ann, "popular").await;
    let fans = crate::posts::quick_users(&app, "fan", 4).await;
    react(&app, &fans[0], &post).await;
    pushes(&browser.device, 1).await;
    for f in &fans[1..] {
        react(&app, f, &post).await;
    }
    jobs_drained(&app).await;
    let all = push_service().read(|s| s.of(&browser.device).to_vec());
    let titles: Vec<&str> = all.iter().map(|p| p.payload["title"].as_str().unwrap()).collect();
    assert!(
        titles[1..].iter().all(|t| t.contains(" and ")),
        "the throttled first push was not resent with one actor: {titles:?}"
    );
    assert!(titles.last().unwrap().ends_with("and 3 others reacted to your post"), "{titles:?}");
    let shown = push_service().read(|s| s.shown[&browser.device].values().cloned().collect::<Vec<_>>());
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0]["title"], *titles.last().unwrap());
}

/// A push service that takes the push and never answers is a timeout: the send is retried,
/// with the same `Topic`, and the device shows the notification once.
async fn a_push_service_that_never_answers_is_retried(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.push.send_timeout_ms = 300).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let browser = push_service().browser("ann-slow");
    push_service().script(&browser.device, &[Answer::AcceptAndStall]);
    register_device(&app, &ann, json!({"web_push": browser.subscription()})).await;
    follow(&app, &bob, &ann).await;
    let both = pushes(&browser.device, 2).await;
    assert_eq!(both[0].topic, both[1].topic);
    jobs_drained(&app).await;
    assert_eq!(push_service().read(|s| (s.of(&browser.device).len(), s.showing(&browser.device))), (2, 1));
}

/// What changed between a push's making and its sending reaches no device: a chat message
/// deleted while the push service's `Retry-After` runs, and an actor the recipient blocked
/// meanwhile (with in-app notifications off, so no in-app row speaks for the push).
async fn a_push_is_checked_again_when_it_is_sent(b: Backend) {
    let (app, ann, bob) = ann_and_bob(b).await;
    let phone = push_service().fcm_token("ann-recheck");
    push_service().script(&phone, &[Answer::Throttle(2), Answer::Throttle(2)]);
    register_device(&app, &ann, json!({"fcm_token": phone})).await;
    let conv = crate::chat::dm(&app, &bob, &ann).await;
    let said = crate::chat::say(&app, &bob, &conv, "oops, wrong chat").await;
    pushes(&phone, 1).await;
    let path = format!("/messages/{}", said["id"].as_str().unwrap());
    assert_eq!(app.call(Method::DELETE, &path, bob.bearer(), None).await.0, StatusCode::NO_CONTENT);

    let (s, _) = app
        .call(
            Method::PUT,
            "/users/me/settings",
            ann.bearer(),
            Some(json!({"notifications": {"follow": {"in_app": false}}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    follow(&app, &bob, &ann).await;
    pushes(&phone, 2).await;
    let (s, _) = app.post(&format!("/users/{}/block", bob.id), ann.bearer(), json!({})).await;
    assert!(s.is_success());
    jobs_drained(&app).await;
    let answers: Vec<Answer> = push_service().read(|s| s.of(&phone).iter().map(|p| p.answer).collect());
    assert_eq!(answers, [Answer::Throttle(2), Answer::Throttle(2)], "neither was sent again");
    assert_eq!(push_service().read(|s| s.showing(&phone)), 0);
}
