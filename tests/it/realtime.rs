//! The socket hub through the plain WebSocket door: auth, topics, durable order and resume,
//! bad input, slow consumers, several instances.

use std::time::Duration;

use chorus::domain::Id;
use chorus::events::{EventName, Topic};
use futures_util::SinkExt;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::both_backends;
use crate::posts::{follow, make_private, new_post};
use crate::support::ws::{WAIT, WsClient, chorus_request, connect_raw, raw_close_code, ws_url};
use crate::support::{Backend, TestApp, TestUser, publish};

both_backends!(
    durable_events_arrive_in_order_with_their_seq,
    ephemeral_topics_deliver_until_unsubscribed,
    personal_topics_of_others_and_foreign_conversations_are_refused,
    subscriptions_follow_the_rest_visibility_rules,
    going_private_ends_strangers_subscriptions_on_every_instance,
    bad_frames_get_errors_and_the_server_stays_up,
    auth_failures_close_with_documented_codes,
    first_frame_auth_and_token_refresh_without_reconnecting,
    token_expiring_without_refresh_closes_the_socket,
    logout_closes_that_sessions_sockets_on_every_instance,
    resume_replays_exactly_the_missed_events,
    resume_from_pruned_history_says_resync_required,
    cross_instance_delivery_is_exactly_once_and_in_order,
    slow_consumer_is_cut_off_and_memory_stays_flat,
);

fn uid(u: &TestUser) -> Id {
    u.id.parse().unwrap()
}

async fn durable_events_arrive_in_order_with_their_seq(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.register("alice").await;
    let mut ws = WsClient::connect(&app.base, &alice.token).await;
    assert_eq!(ws.hello["data"]["user_id"], alice.id);
    assert_eq!(ws.hello["data"]["subscriptions"]["feed"]["result"], "subscribed");
    for i in 1..=3 {
        publish(&app, &[Topic::Feed(uid(&alice))], EventName::PostCreated, json!({"n": i})).await;
    }
    for i in 1..=3 {
        let e = ws.expect_event("feed", "post.created").await;
        assert_eq!(e["seq"], i.to_string());
        assert_eq!(e["data"]["n"], i);
    }
    // Someone else's feed never reaches alice.
    let bob = app.register("bobby").await;
    publish(&app, &[Topic::Feed(uid(&bob))], EventName::PostCreated, json!({"n": 99})).await;
    ws.assert_no_event(Duration::from_millis(300)).await;
}

async fn ephemeral_topics_deliver_until_unsubscribed(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.register("alice").await;
    let bob = app.register("bobby").await; // not followed: no feed traffic for alice
    let post = new_post(&app, &bob, "watch me").await;
    let (topic, id) = (format!("post:{post}"), Topic::Post(post.parse().unwrap()));
    let mut ws = WsClient::connect(&app.base, &alice.token).await;
    let ack = ws.subscribe(&topic).await;
    assert_eq!(ack["data"]["topic"], topic);
    publish(&app, &[id], EventName::CommentCreated, json!({"id": "1"})).await;
    let e = ws.expect_event(&topic, "comment.created").await;
    assert!(e.get("seq").is_none(), "ephemeral events carry no seq");
    let r = ws.request(json!({"op": "unsubscribe", "topic": topic})).await;
    assert_eq!(r["op"], "ok");
    publish(&app, &[id], EventName::CommentCreated, json!({"id": "2"})).await;
    ws.assert_no_event(Duration::from_millis(300)).await;
    assert_eq!(app.state.hub.subscriber_count(&id), 0, "the hub forgot the topic");
}

async fn personal_topics_of_others_and_foreign_conversations_are_refused(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.register("alice").await;
    let bob = app.register("bobby").await;
    let mut ws = WsClient::connect(&app.base, &alice.token).await;
    for topic in [format!("feed:{}", bob.id), format!("ctl:{}", bob.id), "nonsense".into(), "post:abc".into()] {
        let r = ws.request(json!({"op": "subscribe", "topic": topic})).await;
        assert_eq!(r["op"], "error", "{topic}: {r}");
        assert_eq!(r["error"]["code"], "validation_failed", "{topic}");
    }
    let r = ws.request(json!({"op": "subscribe", "topic": "chat:42"})).await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    let r = ws.request(json!({"op": "subscribe"})).await;
    assert_eq!(r["error"]["fields"]["topic"], "is required");
}

/// Subscriptions follow the REST visibility rules (one place decides): a post one may not
/// read is `not_found` as over REST, a private account's `user:` topic is `forbidden` until
/// the follow is approved, and a block hides everything, presence included.
async fn subscriptions_follow_the_rest_visibility_rules(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.register("alice").await;
    let bob = app.register("bobby").await;
    make_private(&app, &bob).await;
    let hidden = new_post(&app, &bob, "followers only").await;
    let mut ws = WsClient::connect(&app.base, &alice.token).await;
    let code = |r: serde_json::Value| {
        r["error"]["code"].as_str().map(str::to_string).unwrap_or_else(|| r["op"].as_str().unwrap().to_string())
    };

    let unknown = "post:123456789";
    assert_eq!(code(ws.request(json!({"op": "subscribe", "topic": unknown})).await), "not_found");
    let (post_t, user_t, presence_t) =
        (format!("post:{hidden}"), format!("user:{}", bob.id), format!("presence:{}", bob.id));
    assert_eq!(code(ws.request(json!({"op": "subscribe", "topic": post_t})).await), "not_found");
    assert_eq!(code(ws.request(json!({"op": "subscribe", "topic": user_t})).await), "forbidden");
    assert_eq!(code(ws.request(json!({"op": "subscribe", "topic": presence_t})).await), "ok");

    // A pending request grants nothing; the approval grants both.
    assert_eq!(follow(&app, &alice, &bob).await, "pending");
    assert_eq!(code(ws.request(json!({"op": "subscribe", "topic": post_t})).await), "not_found");
    let (s, r) = app.post(&format!("/users/me/follow-requests/{}/approve", alice.id), bob.bearer(), json!({})).await;
    assert!(s.is_success(), "{s} {r}");
    assert_eq!(code(ws.request(json!({"op": "subscribe", "topic": post_t})).await), "ok");
    assert_eq!(code(ws.request(json!({"op": "subscribe", "topic": user_t})).await), "ok");

    // Bob blocks alice: nothing of bob exists for her any more. Her live subscriptions end
    // (`unsubscribed`, with what subscribing again answers), and new ones are refused.
    let (s, r) = app.post(&format!("/users/{}/block", alice.id), bob.bearer(), json!({})).await;
    assert!(s.is_success(), "{s} {r}");
    let mut ended = std::collections::BTreeSet::new();
    while ended.len() < 3 {
        let f = ws.next_frame(Duration::from_secs(10)).await.expect("unsubscribed frames");
        if f["op"] == "unsubscribed" {
            assert_eq!(f["error"]["code"], "not_found", "{f}");
            ended.insert(f["topic"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(ended, [&post_t, &user_t, &presence_t].into_iter().cloned().collect());
    assert_eq!(app.state.hub.subscriber_count(&Topic::Post(hidden.parse().unwrap())), 0, "the hub dropped it");
    crate::support::schemas::Schemas::load()
        .check_ws_frame(ws.log.iter().find(|f| f["op"] == "unsubscribed").expect("logged"));
    for t in [&post_t, &user_t, &presence_t] {
        assert_eq!(code(ws.request(json!({"op": "subscribe", "topic": t})).await), "not_found", "{t}");
    }
}

/// An account going private ends strangers' `post:` and `user:` subscriptions to it, on
/// every instance, with the `unsubscribed` answers REST would give; its followers keep
/// theirs and go on receiving events.
async fn going_private_ends_strangers_subscriptions_on_every_instance(b: Backend) {
    let apps = TestApp::cluster(b, 2).await;
    let alice = apps[0].register("alice").await;
    let bob = apps[0].register("bobby").await;
    let carol = apps[0].register("carol").await;
    follow(&apps[0], &carol, &alice).await;
    let post = new_post(&apps[0], &alice, "soon followers only").await;
    let (post_t, user_t) = (format!("post:{post}"), format!("user:{}", alice.id));
    // Both watch from the other instance than the one alice changes her settings on.
    let mut stranger = WsClient::connect(&apps[1].base, &bob.token).await;
    // The post reaches carol's feed too, whenever its fan-out job runs.
    let mut follower = WsClient::connect(&apps[1].base, &carol.token).await.ignoring("feed");
    for ws in [&mut stranger, &mut follower] {
        ws.subscribe(&post_t).await;
        ws.subscribe(&user_t).await;
    }
    let audience = Topic::Audience(uid(&alice));
    assert_eq!(apps[1].state.hub.subscriber_count(&audience), 2, "one watch per session, not per topic");

    make_private(&apps[0], &alice).await;
    let mut ended = std::collections::BTreeMap::new();
    while ended.len() < 2 {
        let f = stranger.next_frame(Duration::from_secs(10)).await.expect("unsubscribed frames");
        if f["op"] == "unsubscribed" {
            ended.insert(f["topic"].as_str().unwrap().to_string(), f["error"]["code"].as_str().unwrap().to_string());
        }
    }
    let expected = [(post_t.clone(), "not_found".to_string()), (user_t.clone(), "forbidden".to_string())];
    assert_eq!(ended, expected.into_iter().collect());
    assert_eq!(apps[1].state.hub.subscriber_count(&Topic::Post(post.parse().unwrap())), 1, "the follower's stays");
    assert_eq!(apps[1].state.hub.subscriber_count(&audience), 1, "the stranger stopped watching");

    let (s, r) = apps[0].post(&format!("/posts/{post}/comments"), alice.bearer(), json!({"body": "hi"})).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    follower.expect_event(&post_t, "comment.created").await;
    assert!(follower.log.iter().all(|f| f["op"] != "unsubscribed"), "{:?}", follower.log);
    stranger.assert_no_event(Duration::from_millis(300)).await;

    assert_eq!(stranger.request(json!({"op": "subscribe", "topic": post_t})).await["error"]["code"], "not_found");
}

async fn bad_frames_get_errors_and_the_server_stays_up(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.hub.max_frame_bytes = 1024).await;
    let alice = app.register("alice").await;
    let mut ws = WsClient::connect(&app.base, &alice.token).await;
    ws.send_text("this is not json").await;
    let f = ws.next_frame(Duration::from_secs(5)).await.unwrap();
    assert_eq!((f["op"].as_str(), f["error"]["code"].as_str()), (Some("error"), Some("bad_frame")), "{f}");
    let r = ws.request(json!({"op": "teleport"})).await;
    assert_eq!(r["error"]["code"], "unknown_op", "{r}");
    let r = ws.request(json!({"op": "subscribe", "topic": "post:1", "from": "-3"})).await;
    assert_eq!(r["error"]["code"], "validation_failed", "{r}");
    ws.send_text(r#"{"op":"ping","id":42}"#).await;
    let f = ws.next_frame(Duration::from_secs(5)).await.unwrap();
    assert_eq!(f, json!({"id": 42, "op": "pong"}));

    // Oversized frame: closed with 4504.
    let mut big = WsClient::connect(&app.base, &alice.token).await;
    big.send_text(&format!("{{\"op\":\"ping\",\"pad\":\"{}\"}}", "x".repeat(4096))).await;
    assert_eq!(big.expect_close().await.0, 4504);
    // Binary frame: protocol violation.
    let mut raw = connect_raw(&format!("{}?access_token={}", ws_url(&app.base), alice.token)).await;
    raw.send(Message::Binary(vec![1, 2, 3].into())).await.unwrap();
    assert_eq!(raw_close_code(&mut raw).await, Some(4502));
    // The server is fine.
    let mut again = WsClient::connect(&app.base, &alice.token).await;
    publish(&app, &[Topic::Feed(uid(&alice))], EventName::PostCreated, json!({})).await;
    again.expect_event("feed", "post.created").await;
    assert_eq!(app.get("/auth/me", alice.bearer()).await.0, StatusCode::OK);
}

async fn auth_failures_close_with_documented_codes(b: Backend) {
    let secret = "a-test-secret-that-is-long-enough-1234567890";
    let app = TestApp::spawn_with(b, |c| {
        c.hub.auth_timeout_secs = 1;
        c.jwt_secret = Some(secret.into());
    })
    .await;
    let url = ws_url(&app.base);
    // No token at all: nothing within the auth timeout.
    let mut raw = connect_raw(&url).await;
    assert_eq!(raw_close_code(&mut raw).await, Some(4500));
    // Malformed.
    let mut raw = connect_raw(&format!("{url}?access_token=garbage")).await;
    assert_eq!(raw_close_code(&mut raw).await, Some(4500));
    // Expired: minted with the server's key but already past `exp`.
    let alice = app.register("alice").await;
    let expired = chorus::auth::Auth::new(secret.as_bytes(), -30, 60);
    let me: Id = uid(&alice);
    let (token, _) = expired.issue_access(me, Id(1)).unwrap();
    let mut raw = connect_raw(&format!("{url}?access_token={token}")).await;
    assert_eq!(raw_close_code(&mut raw).await, Some(4004));
    // Revoked (logged out).
    assert_eq!(app.call(Method::POST, "/auth/logout", alice.bearer(), None).await.0, StatusCode::NO_CONTENT);
    let mut raw = connect_raw(&format!("{url}?access_token={}", alice.token)).await;
    assert_eq!(raw_close_code(&mut raw).await, Some(4501));
    // A first frame that is not auth.
    let mut raw = connect_raw(&url).await;
    raw.send(Message::Text(r#"{"op":"subscribe","topic":"feed"}"#.into())).await.unwrap();
    assert_eq!(raw_close_code(&mut raw).await, Some(4500));
}

async fn first_frame_auth_and_token_refresh_without_reconnecting(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.register("alice").await;
    let mut raw = connect_raw(&ws_url(&app.base)).await;
    raw.send(Message::Text(json!({"op": "auth", "token": alice.token}).to_string().into())).await.unwrap();
    drop(raw);
    // The same through the client helper (it reads hello).
    let mut ws = WsClient::connect(&app.base, &alice.token).await;
    let (s, refreshed) = app.post("/auth/refresh", None, json!({"refresh_token": alice.refresh})).await;
    assert_eq!(s, StatusCode::OK);
    let fresh = TestUser::from_auth(&refreshed);
    let r = ws.request(json!({"op": "auth", "token": fresh.token})).await;
    assert_eq!(r["op"], "ok", "{r}");
    assert!(r["data"]["token_expires_at"].as_i64().unwrap() > 0);
    let bob = app.register("bobby").await;
    let r = ws.request(json!({"op": "auth", "token": bob.token})).await;
    assert_eq!(r["error"]["code"], "unauthorized", "another user's token is refused: {r}");
    publish(&app, &[Topic::Feed(uid(&alice))], EventName::PostCreated, json!({})).await;
    ws.expect_event("feed", "post.created").await;
}

async fn token_expiring_without_refresh_closes_the_socket(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.access_token_ttl_secs = 2).await;
    let alice = app.register("alice").await;
    let mut ws = WsClient::connect(&app.base, &alice.token).await;
    let (code, reason) = ws.expect_close().await;
    assert_eq!((code, reason.as_str()), (4004, "token_expired"));
}

async fn logout_closes_that_sessions_sockets_on_every_instance(b: Backend) {
    let apps = TestApp::cluster(b, 2).await;
    let alice = apps[0].register("alice").await;
    let (_, other) = apps[1].post("/auth/login", None, json!({"login": "alice", "password": "password123"})).await;
    let other = TestUser::from_auth(&other);
    let mut on_a = WsClient::connect(&apps[0].base, &alice.token).await;
    let mut on_b = WsClient::connect(&apps[1].base, &alice.token).await;
    let mut other_b = WsClient::connect(&apps[1].base, &other.token).await;
    assert_eq!(apps[0].call(Method::POST, "/auth/logout", alice.bearer(), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(on_a.expect_close().await.0, 4501);
    assert_eq!(on_b.expect_close().await.0, 4501);
    let r = other_b.request(json!({"op": "subscribe", "topic": format!("user:{}", alice.id)})).await;
    assert_eq!(r["op"], "ok", "the other session's socket stays open");
}

async fn resume_replays_exactly_the_missed_events(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.register("alice").await;
    let feed = Topic::Feed(uid(&alice));
    let mut ws = WsClient::connect(&app.base, &alice.token).await;
    for i in 1..=2 {
        publish(&app, &[feed], EventName::PostCreated, json!({"n": i})).await;
    }
    ws.expect_event("feed", "post.created").await;
    let last = ws.expect_event("feed", "post.created").await["seq"].as_str().unwrap().to_string();
    ws.close().await;
    for i in 3..=5 {
        publish(&app, &[feed], EventName::PostCreated, json!({"n": i})).await;
    }
    let mut ws = WsClient::connect_resuming(&app.base, &alice.token, json!({"feed": last})).await;
    assert_eq!(ws.hello["data"]["subscriptions"]["feed"]["result"], "resumed", "{}", ws.hello);
    for i in 3..=5 {
        let e = ws.expect_event("feed", "post.created").await;
        assert_eq!((e["seq"].as_str().unwrap(), &e["data"]["n"]), (i.to_string().as_str(), &json!(i)));
    }
    publish(&app, &[feed], EventName::PostCreated, json!({"n": 6})).await;
    assert_eq!(ws.expect_event("feed", "post.created").await["seq"], "6", "then live, no gap");
    ws.assert_no_event(Duration::from_millis(300)).await;

    // A later `resume` frame for a topic that is not streaming replays it too.
    let r = ws.request(json!({"op": "resume", "positions": {"notification": "0", "feed": "6"}})).await;
    assert_eq!(r["data"]["topics"]["feed"]["result"], "subscribed", "{r}");
}

async fn resume_from_pruned_history_says_resync_required(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.register("alice").await;
    let feed = Topic::Feed(uid(&alice));
    for i in 1..=3 {
        publish(&app, &[feed], EventName::PostCreated, json!({"n": i})).await;
    }
    let mut tx = app.state.store.begin().await.unwrap();
    chorus::store::events::purge_before(tx.ex(), chorus::domain::Timestamp(chorus::domain::now_ms() + 1000))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut ws = WsClient::connect_resuming(&app.base, &alice.token, json!({"feed": "1"})).await;
    assert_eq!(ws.hello["data"]["subscriptions"]["feed"]["result"], "resync_required");
    let f = ws.next_event().await;
    assert_eq!(
        (f["op"].as_str(), f["topic"].as_str(), f["seq"].as_str()),
        (Some("resync_required"), Some("feed"), Some("3"))
    );
    publish(&app, &[feed], EventName::PostCreated, json!({"n": 4})).await;
    assert_eq!(ws.expect_event("feed", "post.created").await["seq"], "4");
}

async fn cross_instance_delivery_is_exactly_once_and_in_order(b: Backend) {
    let apps = TestApp::cluster(b, 2).await;
    let alice = apps[0].register("alice").await;
    let feed = Topic::Feed(uid(&alice));
    let mut on_a = WsClient::connect(&apps[0].base, &alice.token).await;
    let mut on_b = WsClient::connect(&apps[1].base, &alice.token).await;
    // Publishers on both instances, concurrently.
    let (a, bb) = (&apps[0], &apps[1]);
    let pubs_a = async {
        for i in 0..25 {
            publish(a, &[feed], EventName::PostCreated, json!({"from": "a", "i": i})).await;
        }
    };
    let pubs_b = async {
        for i in 0..25 {
            publish(bb, &[feed], EventName::PostCreated, json!({"from": "b", "i": i})).await;
        }
    };
    tokio::join!(pubs_a, pubs_b);
    for ws in [&mut on_a, &mut on_b] {
        for seq in 1..=50 {
            let e = ws.expect_event("feed", "post.created").await;
            assert_eq!(e["seq"], seq.to_string(), "in order, no gap, no duplicate");
        }
        ws.assert_no_event(Duration::from_millis(300)).await;
    }
}

async fn slow_consumer_is_cut_off_and_memory_stays_flat(b: Backend) {
    // Memory is measured in `tests/memory.rs` (its own process, nothing else running);
    // here: the slow client is cut off, the healthy one is not slowed down.
    let app = TestApp::spawn_with(b, |c| c.hub.queue_frames = 16).await;
    let alice = app.register("alice").await;
    let bob = app.register("bobby").await;
    let post = new_post(&app, &alice, "busy").await;
    let (topic, id) = (format!("post:{post}"), Topic::Post(post.parse().unwrap()));
    let mut slow = WsClient::connect(&app.base, &alice.token).await;
    slow.subscribe(&topic).await;
    let mut healthy = WsClient::connect(&app.base, &bob.token).await.without_log();
    healthy.subscribe(&topic).await;
    let mut slow = slow.into_inner(); // stops reading from here on
    let blob = "x".repeat(64 * 1024);
    let mut batch = chorus::events::EventBatch::new();
    // Bursts of 8 (half the queue): a client that reads keeps up, one that does not fills up.
    for i in 0..800 {
        batch.ephemeral(&[id], EventName::CommentCreated, &json!({"i": i, "blob": blob}));
        if i % 8 == 7 {
            app.state.publish(std::mem::take(&mut batch));
            for _ in 0..8 {
                healthy.expect_event(&topic, "comment.created").await;
            }
        }
    }
    // The slow session is gone from the hub; the healthy one still subscribed.
    crate::support::eventually(Duration::from_secs(10), || async {
        (app.state.hub.subscriber_count(&id) == 1).then_some(())
    })
    .await;
    // Its connection ends (with 4001 when the close frame still fits in its buffers).
    let code = raw_close_code(&mut slow).await;
    assert!(code.is_none() || code == Some(4001), "closed with {code:?}");
    let m = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(m.contains("chorus_events_dropped_total"), "drops are counted");
    assert!(m.contains(r#"chorus_socket_closes_total{door="ws",code="4001"}"#), "the close reason is counted");
}

/// `hub.write_delay_ms`: events committed one after another within the delay reach the
/// client in one write, in order. (Without the delay the first is written as soon as it is
/// delivered, while the client already waits in `read`, so it arrives on its own.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_delay_sends_the_events_that_arrive_meanwhile_in_one_write() {
    use futures_util::StreamExt;

    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.hub.write_delay_ms = 1000).await;
    let alice = app.register("alice").await;
    // Bytes per read that returned data: on loopback, one server `send` of a few frames is
    // one read when the reader already waits.
    let reads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let counted = reads.clone();
    let tcp = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    let stream = tokio_util::io::InspectReader::new(tcp, move |b: &[u8]| {
        if !b.is_empty() {
            counted.lock().unwrap().push(b.len());
        }
    });
    let url = format!("{}?access_token={}", ws_url(&app.base), alice.token);
    let (mut ws, _) = tokio_tungstenite::client_async(chorus_request(&url), stream).await.expect("handshake");
    let mut next_json = async move || loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("a frame in time") {
            Some(Ok(Message::Text(t))) => return serde_json::from_str::<serde_json::Value>(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("connection ended: {other:?}"),
        }
    };
    assert_eq!(next_json().await["op"], "hello");
    reads.lock().unwrap().clear();
    // The client waits in `read` while the events are published.
    let reader = tokio::spawn(async move {
        let mut events = Vec::new();
        for _ in 0..5 {
            events.push(next_json().await);
        }
        events
    });
    // Five transactions, each handed to the hub as it commits.
    for n in 1..=5 {
        publish(&app, &[Topic::Feed(uid(&alice))], EventName::PostCreated, json!({"n": n})).await;
    }
    for (e, n) in reader.await.unwrap().into_iter().zip(1..) {
        assert_eq!((e["topic"].as_str(), e["seq"].as_str()), (Some("feed"), Some(n.to_string().as_str())));
        assert_eq!(e["data"]["n"], n);
    }
    let reads = reads.lock().unwrap().clone();
    assert_eq!(reads.len(), 1, "the five events came in one write (bytes per read: {reads:?})");
}
