//! The Socket.IO door with the official `socket.io-client` v4.

use std::time::Duration;

use chorus::domain::Id;
use chorus::events::{EventName, Topic};
use serde_json::json;

use crate::both_backends;
use crate::support::sio::Sio;
use crate::support::ws::WsClient;
use crate::support::{Backend, TestApp, TestUser, publish};

both_backends!(
    socketio_client_receives_feed_and_post_events,
    socketio_handshake_refusals_use_documented_messages,
    socketio_resumes_from_handshake_positions,
    socketio_clients_are_told_to_reconnect_on_shutdown,
);

fn uid(u: &TestUser) -> Id {
    u.id.parse().unwrap()
}

async fn socketio_client_receives_feed_and_post_events(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.register("alice").await;
    let Some(mut sio) = Sio::start(&app.base).await else { return };
    sio.connect("post", "/post", json!({"token": alice.token})).await.expect("connects");
    let hello = sio.event("post", "hello").await;
    assert_eq!(hello["user_id"], alice.id);

    publish(&app, &[Topic::Feed(uid(&alice))], EventName::PostCreated, json!({"id": "11", "caption": "hi"})).await;
    let e = sio.event("post", "post.created").await;
    assert_eq!(e, json!({"topic": "feed", "seq": "1", "data": {"id": "11", "caption": "hi"}}));

    // An ephemeral topic through the room broadcast, next to a plain-WebSocket watcher.
    let bob = app.register("bobby").await; // someone alice does not follow: no feed traffic
    let post = crate::posts::new_post(&app, &bob, "watched").await;
    let (topic, watched) = (format!("post:{post}"), Topic::Post(post.parse().unwrap()));
    let ack = sio.emit("post", "subscribe", json!({"topic": topic})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let mut ws = WsClient::connect(&app.base, &alice.token).await;
    ws.subscribe(&topic).await;
    publish(&app, &[watched], EventName::CommentCreated, json!({"id": "c1"})).await;
    assert_eq!(sio.event("post", "comment.created").await, json!({"topic": topic, "data": {"id": "c1"}}));
    ws.expect_event(&topic, "comment.created").await;

    let ack = sio.emit("post", "subscribe", json!({"topic": "chat:1"})).await;
    assert_eq!((ack["ok"].clone(), ack["error"]["code"].clone()), (json!(false), json!("forbidden")));
    let ack = sio.emit("post", "unsubscribe", json!({"topic": topic})).await;
    assert_eq!(ack["ok"], true);
    publish(&app, &[watched], EventName::CommentCreated, json!({"id": "c2"})).await;
    ws.expect_event(&topic, "comment.created").await;
    sio.assert_no_event("post", "comment.created", Duration::from_millis(300)).await;

    // The notification namespace carries notifications.
    sio.connect("n", "/notification", json!({"token": alice.token})).await.unwrap();
    sio.event("n", "hello").await;
    publish(&app, &[Topic::Notification(uid(&alice))], EventName::NotificationCreated, json!({"id": "n1"})).await;
    assert_eq!(sio.event("n", "notification.created").await["data"]["id"], "n1");
}

async fn socketio_handshake_refusals_use_documented_messages(b: Backend) {
    let app = TestApp::spawn(b).await;
    let Some(mut sio) = Sio::start(&app.base).await else { return };
    assert_eq!(sio.connect("a", "/post", json!({})).await, Err("unauthorized".into()));
    assert_eq!(sio.connect("b", "/post", json!({"token": "nope"})).await, Err("unauthorized".into()));
    let alice = app.register("alice").await;
    app.call(reqwest::Method::POST, "/auth/logout", alice.bearer(), None).await;
    assert_eq!(sio.connect("c", "/chat", json!({"token": alice.token})).await, Err("token_revoked".into()));
}

async fn socketio_resumes_from_handshake_positions(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.register("alice").await;
    let follower = Topic::Follower(uid(&alice));
    for i in 1..=4 {
        publish(&app, &[follower], EventName::FollowerAdded, json!({"n": i})).await;
    }
    let Some(mut sio) = Sio::start(&app.base).await else { return };
    sio.connect("f", "/follower", json!({"token": alice.token, "positions": {"follower": "2"}})).await.unwrap();
    for n in 3..=4 {
        let e = sio.event("f", "follower.added").await;
        assert_eq!((e["seq"].clone(), e["data"]["n"].clone()), (json!(n.to_string()), json!(n)));
    }
    publish(&app, &[follower], EventName::FollowerAdded, json!({"n": 5})).await;
    assert_eq!(sio.event("f", "follower.added").await["seq"], "5");
}

async fn socketio_clients_are_told_to_reconnect_on_shutdown(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.register("alice").await;
    let Some(mut sio) = Sio::start(&app.base).await else { return };
    sio.connect("p", "/post", json!({"token": alice.token})).await.unwrap();
    sio.event("p", "hello").await;
    let stop = tokio::spawn(app.stop());
    let r = sio.event("p", "reconnect").await;
    assert_eq!(r, json!({"reason": "shutdown", "code": 4000}));
    sio.disconnected("p").await;
    stop.await.unwrap().expect("clean shutdown");
}
