//! `protocol/` is true to the code: real server output validates against the JSON Schemas,
//! and every event, close code and op the code knows is specified.

use std::time::Duration;

use chorus::domain::Id;
use chorus::events::{EventName, Topic};
use chorus::realtime::close::CloseCode;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::posts::{follow, make_private, new_post};
use crate::support::schemas::Schemas;
use crate::support::sio::Sio;
use crate::support::ws::WsClient;
use crate::support::{Backend, TestApp, TestUser, publish};

fn uid(u: &TestUser) -> Id {
    u.id.parse().unwrap()
}

/// Every event the server can emit has a data schema, every close code is in the spec.
#[test]
fn every_event_close_code_and_op_is_specified() {
    let schemas = Schemas::load();
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/protocol/PROTOCOL.md")).unwrap();
    // Control events are internal: they never reach a client.
    for e in EventName::ALL.into_iter().filter(|e| !matches!(e, EventName::SessionRevoked | EventName::AccessChanged)) {
        assert!(schemas.has(&format!("events/{}.json", e.as_str())), "no schema for {}", e.as_str());
        assert!(spec.contains(&format!("`{}`", e.as_str())), "{} missing from PROTOCOL.md", e.as_str());
    }
    for (code, reason) in CloseCode::ALL {
        assert!(
            spec.contains(&format!("| {} | `{reason}` |", code.0)),
            "close code {} missing from PROTOCOL.md",
            code.0
        );
    }
    for op in ["auth", "subscribe", "unsubscribe", "resume", "ping", "chat.send", "chat.typing", "chat.read"] {
        assert!(schemas.has(&format!("client/{op}.json")), "no schema for client op {op}");
    }
}

/// The example frames in the schemas' own terms: client frames the docs show are valid.
#[test]
fn documented_client_frames_validate() {
    let s = Schemas::load();
    s.check(
        "client/auth.json",
        &json!({"op": "auth", "token": "x", "positions": {"notification": "120", "chat:9": "55"}}),
    );
    s.check("client/subscribe.json", &json!({"id": 7, "op": "subscribe", "topic": "post:42"}));
    s.check(
        "client/resume.json",
        &json!({"id": 8, "op": "resume", "positions": {"notification": "120", "chat:9": "55"}}),
    );
    s.check(
        "client/chat.send.json",
        &json!({"id": 9, "op": "chat.send", "data": {"conversation_id": "9", "body": "hi", "client_msg_id": "abc"}}),
    );
    let v = jsonschema::options()
        .build(&serde_json::from_str::<Value>(include_str!("../../protocol/schemas/client/subscribe.json")).unwrap());
    assert!(v.is_err(), "schemas reference defs.json: they only build with the resources registered");
}

/// Every kind of frame the server really sends over `/ws` matches its schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_ws_output_matches_the_schemas() {
    let schemas = Schemas::load();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.hub.client_burst = 6).await;
    let alice = app.register("alice").await;
    let bob = app.register("bobby").await;
    let mut ws = WsClient::connect(&app.base, &alice.token).await;
    ws.subscribe(&format!("user:{}", bob.id)).await;
    ws.request(json!({"op": "subscribe", "topic": "chat:1"})).await; // error: forbidden
    ws.send_text(r#"{"op":"ping","id":5}"#).await;
    ws.next_frame(Duration::from_secs(5)).await.unwrap();
    ws.send_text("garbage").await;
    ws.next_frame(Duration::from_secs(5)).await.unwrap();
    // Rate limited (burst 6), on a second connection: an error frame with code rate_limited.
    let mut flood = WsClient::connect(&app.base, &alice.token).await;
    for _ in 0..8 {
        flood.send_text(r#"{"op":"ping"}"#).await;
    }
    let mut limited = None;
    while limited.is_none() {
        let f = flood.next_frame(Duration::from_secs(5)).await.expect("replies to the flood");
        if f["error"]["code"] == "rate_limited" {
            limited = Some(f);
        }
    }
    schemas.check_ws_frame(&limited.unwrap());
    publish(&app, &[Topic::Feed(uid(&alice))], EventName::PostCreated, json!({})).await;
    // Real presence events come from the server itself.
    ws.subscribe(&format!("presence:{}", bob.id)).await;
    let bob_ws = WsClient::connect(&app.base, &bob.token).await;
    bob_ws.close().await;
    let mut presence = 0;
    while presence < 2 {
        let f = ws.next_frame(Duration::from_secs(10)).await.expect("frames");
        if f["event"] == "presence.changed" {
            presence += 1;
        }
    }
    for f in &ws.log {
        if f["event"] == "post.created" {
            // Published by the test with placeholder data; its envelope must still match.
            schemas.check("server/event.json", f);
        } else {
            schemas.check_ws_frame(f);
        }
    }
    let ops: Vec<&str> = ws.log.iter().filter_map(|f| f["op"].as_str()).collect();
    for op in ["hello", "ok", "error", "pong", "event"] {
        assert!(ops.contains(&op), "scenario produced no {op}: {ops:?}");
    }

    // resync_required and reconnect.
    let feed = Topic::Feed(uid(&alice));
    let mut tx = app.state.store.begin().await.unwrap();
    chorus::store::events::purge_before(tx.ex(), chorus::domain::Timestamp(chorus::domain::now_ms() + 1000))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    publish(&app, &[feed], EventName::PostCreated, json!({})).await;
    let mut again = WsClient::connect_resuming(&app.base, &alice.token, json!({"feed": "0"})).await;
    let f = again.next_event().await;
    assert_eq!(f["op"], "resync_required");
    schemas.check_ws_frame(&again.hello);
    schemas.check_ws_frame(&f);
    let stop = tokio::spawn(app.stop());
    let f = again.next_frame(Duration::from_secs(10)).await.unwrap();
    schemas.check_ws_frame(&f);
    assert_eq!(f["op"], "reconnect");
    stop.await.unwrap().unwrap();
}

/// Every social event, produced by real REST calls (follow request and approval, a post
/// fanned out to a follower's feed, comments, reactions, edits, deletions, unfollow),
/// matches its schema on every topic it arrives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_social_events_match_the_schemas() {
    let schemas = Schemas::load();
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.register("alice").await;
    let bob = app.register("bobby").await;
    make_private(&app, &bob).await;
    // Notifications arrive at their job's pace: checked from the log, not awaited in order.
    let mut a = WsClient::connect(&app.base, &alice.token).await.ignoring("notification");
    let mut b = WsClient::connect(&app.base, &bob.token).await.ignoring("notification");
    b.subscribe(&format!("user:{}", bob.id)).await;

    assert_eq!(follow(&app, &alice, &bob).await, "pending");
    b.expect_event("follower", "follow.requested").await;
    let (s, _) = app.post(&format!("/users/me/follow-requests/{}/approve", alice.id), bob.bearer(), json!({})).await;
    assert!(s.is_success());
    a.expect_event("follower", "follow.approved").await;
    b.expect_event("follower", "follower.added").await;

    let post = new_post(&app, &bob, "hello #chorus @alice").await;
    let topic = format!("post:{post}");
    a.expect_event("feed", "post.created").await;
    // `user:` comes from the request, bob's own `feed` from the fan-out job: either first.
    b.expect_events_in_any_order(&[(&format!("user:{}", bob.id), "post.created"), ("feed", "post.created")]).await;
    a.subscribe(&topic).await;
    let (s, c) = app.post(&format!("/posts/{post}/comments"), alice.bearer(), json!({"body": "hi @bobby"})).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let comment = c["id"].as_str().unwrap().to_string();
    a.expect_event(&topic, "comment.created").await;
    let (s, reply) =
        app.post(&format!("/posts/{post}/comments"), bob.bearer(), json!({"body": "yo", "parent_id": comment})).await;
    assert_eq!(s, StatusCode::CREATED, "{reply}");
    a.expect_event(&topic, "comment.created").await;
    app.call(Method::PATCH, &format!("/comments/{comment}"), alice.bearer(), Some(json!({"body": "hi again"}))).await;
    a.expect_event(&topic, "comment.updated").await;
    app.call(Method::PUT, &format!("/posts/{post}/reaction"), alice.bearer(), Some(json!({"type": "love"}))).await;
    a.expect_event(&topic, "reaction.changed").await;
    app.call(Method::PUT, &format!("/comments/{comment}/reaction"), bob.bearer(), Some(json!({"type": "like"}))).await;
    a.expect_event(&topic, "reaction.changed").await;
    app.call(Method::PATCH, &format!("/posts/{post}"), bob.bearer(), Some(json!({"caption": "edited"}))).await;
    a.expect_events_in_any_order(&[(&topic, "post.updated"), ("feed", "post.updated")]).await;
    // With a reply: a tombstone; then the reply itself: a plain deletion.
    assert_eq!(
        app.call(Method::DELETE, &format!("/comments/{comment}"), alice.bearer(), None).await.0,
        StatusCode::NO_CONTENT
    );
    a.expect_event(&topic, "comment.deleted").await;
    let reply = reply["id"].as_str().unwrap();
    assert_eq!(
        app.call(Method::DELETE, &format!("/comments/{reply}"), bob.bearer(), None).await.0,
        StatusCode::NO_CONTENT
    );
    a.expect_event(&topic, "comment.deleted").await;
    // The last reply gone, the tombstone above it goes too.
    let gone = a.expect_event(&topic, "comment.deleted").await;
    assert_eq!(gone["data"]["id"], comment.as_str());
    assert_eq!(app.call(Method::DELETE, &format!("/posts/{post}"), bob.bearer(), None).await.0, StatusCode::NO_CONTENT);
    a.expect_events_in_any_order(&[(&topic, "post.deleted"), ("feed", "post.deleted")]).await;
    let (s, _) = app.call(Method::DELETE, &format!("/users/{}/follow", bob.id), alice.bearer(), None).await;
    assert!(s.is_success());
    // Bob's sockets saw his post's life on his feed and `user:` topic meanwhile.
    while b.next_event().await["event"] != "follower.removed" {}

    let mut seen = std::collections::BTreeSet::new();
    for f in a.log.iter().chain(b.log.iter()) {
        schemas.check_ws_frame(f);
        if let Some(e) = f["event"].as_str() {
            seen.insert(e.to_string());
        }
    }
    for e in [
        "follow.requested",
        "follow.approved",
        "follower.added",
        "follower.removed",
        "post.created",
        "post.updated",
        "post.deleted",
        "comment.created",
        "comment.updated",
        "comment.deleted",
        "reaction.changed",
        "notification.created",
    ] {
        assert!(seen.contains(e), "{e} was checked");
    }
}

/// The `chat:*` events and the chat actions' replies, from real conversations, match their
/// schemas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_chat_events_match_the_schemas() {
    let schemas = Schemas::load();
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (alice, bob, carol) = (app.register("alice").await, app.register("bobby").await, app.register("carol").await);
    let mut a = WsClient::connect(&app.base, &alice.token).await;
    let mut b = WsClient::connect(&app.base, &bob.token).await;
    let (s, g) = app
        .post("/conversations", alice.bearer(), json!({"kind": "group", "title": "g", "member_ids": [bob.id]}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let conv = g["id"].as_str().unwrap().to_string();
    let topic = format!("chat:{conv}");
    let mut replies = Vec::new();
    replies.push(
        a.request(json!({"op": "chat.send", "data": {"conversation_id": conv, "body": "hi", "client_msg_id": "1"}}))
            .await,
    );
    let msg = replies[0]["data"]["id"].as_str().unwrap().to_string();
    replies.push(b.request(json!({"op": "chat.typing", "data": {"conversation_id": conv}})).await);
    replies.push(b.request(json!({"op": "chat.read", "data": {"conversation_id": conv, "message_id": msg}})).await);
    assert!(replies.iter().all(|r| r["op"] == "ok"), "{replies:?}");
    app.call(Method::PATCH, &format!("/messages/{msg}"), alice.bearer(), Some(json!({"body": "hi!"}))).await;
    app.call(Method::PUT, &format!("/messages/{msg}/reaction"), bob.bearer(), Some(json!({"type": "like"}))).await;
    app.post(&format!("/conversations/{conv}/members"), alice.bearer(), json!({"user_ids": [carol.id]})).await;
    app.call(Method::DELETE, &format!("/conversations/{conv}/members/{}", carol.id), alice.bearer(), None).await;
    app.call(Method::DELETE, &format!("/messages/{msg}"), alice.bearer(), None).await;
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 8 {
        let f = a.next_event().await;
        assert_eq!(f["topic"], topic.as_str());
        seen.insert(f["event"].as_str().unwrap().to_string());
    }
    for f in a.log.iter().chain(b.log.iter()).chain(&replies) {
        schemas.check_ws_frame(f);
    }
    // The `chat.send` reply is the message as the event carries it.
    schemas.check("events/message.created.json", &replies[0]["data"]);
    let expected = [
        "member.added",
        "member.removed",
        "message.created",
        "message.deleted",
        "message.reaction",
        "message.updated",
        "read",
        "typing",
    ];
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), expected);
}

/// The `image` topic's events, from a real upload, match their schemas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_media_events_match_the_schemas() {
    let schemas = Schemas::load();
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.register("alice").await;
    let mut ws = WsClient::connect(&app.base, &alice.token).await;
    let mut png = Vec::new();
    image::RgbImage::from_pixel(40, 30, image::Rgb([200, 10, 10]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let upload = |bytes: Vec<u8>, name: &'static str| {
        let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name(name));
        app.http.post(app.api("/media")).bearer_auth(&alice.token).multipart(form).send()
    };
    assert_eq!(upload(png, "a.png").await.unwrap().status(), 201);
    schemas.check_ws_frame(&ws.expect_event("image", "media.processing").await);
    let ready = ws.expect_event("image", "media.ready").await;
    schemas.check_ws_frame(&ready);
    assert!(!ready["data"]["variants"].as_array().unwrap().is_empty());
    // A truncated JPEG is accepted, then fails with a reason.
    let mut jpeg = Vec::new();
    image::RgbImage::from_pixel(64, 64, image::Rgb([1, 2, 3]))
        .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    jpeg.truncate(jpeg.len() / 2);
    assert_eq!(upload(jpeg, "b.jpg").await.unwrap().status(), 201);
    schemas.check_ws_frame(&ws.expect_event("image", "media.processing").await);
    schemas.check_ws_frame(&ws.expect_event("image", "media.failed").await);
}

/// Socket.IO events and acks match their schemas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_socketio_output_matches_the_schemas() {
    let schemas = Schemas::load();
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = app.register("alice").await;
    let bob = app.register("bobby").await;
    let Some(mut sio) = Sio::start(&app.base).await else { return };
    sio.connect("c", "/chat", json!({"token": alice.token})).await.unwrap();
    sio.event("c", "hello").await;
    let ok = sio.emit("c", "subscribe", json!({"topic": format!("presence:{}", bob.id)})).await;
    schemas.check("server/sio_ack.json", &ok);
    let err = sio.emit("c", "subscribe", json!({"topic": "feed:1"})).await;
    schemas.check("server/sio_ack.json", &err);
    assert_eq!(err["ok"], false);
    let bob_ws = WsClient::connect(&app.base, &bob.token).await;
    let e = sio.event("c", "presence.changed").await;
    schemas.check_sio_event("presence.changed", &e);
    bob_ws.close().await;
    let e = sio.event("c", "presence.changed").await;
    schemas.check_sio_event("presence.changed", &e);
    assert_eq!(e["data"]["online"], false);
}
