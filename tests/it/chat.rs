//! Chat: direct and group conversations, idempotent sends, live delivery over the socket,
//! receipts and unread counts across devices, typing, group rules, blocks, two instances.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::ws::WsClient;
use crate::support::{Backend, TestApp, TestUser, eventually};

both_backends!(
    direct_conversations_are_one_per_pair_and_blocks_refuse_them,
    sends_are_idempotent_under_retry,
    messages_flow_live_with_edits_deletes_reactions_and_history,
    receipts_and_unread_counts_agree_across_two_devices,
    group_membership_rules_and_live_joins,
    typing_is_transient_and_throttled,
    chat_works_across_two_instances_with_redis,
    members_without_an_open_socket_get_a_message_notification,
);

/// Opens (or finds) the direct conversation of `a` with `b`; its id.
pub async fn dm(app: &TestApp, a: &TestUser, b: &TestUser) -> String {
    let (s, v) = app.post("/conversations", a.bearer(), json!({"kind": "direct", "user_id": b.id})).await;
    assert!(s == StatusCode::CREATED || s == StatusCode::OK, "{s} {v}");
    v["id"].as_str().unwrap().to_string()
}

/// Sends `body` over REST with a client id; the stored message.
pub async fn say(app: &TestApp, who: &TestUser, conv: &str, body: &str) -> Value {
    let (s, v) = app
        .post(
            &format!("/conversations/{conv}/messages"),
            who.bearer(),
            json!({"body": body, "client_msg_id": format!("{}-{body}", who.id)}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

/// The next event named `event` on `topic`, skipping events of other kinds (their order
/// relative to this one is not promised).
async fn until(ws: &mut WsClient, topic: &str, event: &str) -> Value {
    loop {
        let f = ws.next_event().await;
        if f["topic"] == topic && f["event"] == event {
            return f;
        }
    }
}

async fn direct_conversations_are_one_per_pair_and_blocks_refuse_them(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (alice, bob, carol) = (app.register("alice").await, app.register("bob_b").await, app.register("carol").await);
    let (s, first) = app.post("/conversations", alice.bearer(), json!({"kind": "direct", "user_id": bob.id})).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["kind"], "direct");
    assert_eq!(first["members"].as_array().unwrap().len(), 2);
    let id = first["id"].as_str().unwrap();
    // Again, from either side, by id or @username: the same conversation.
    let (s, again) = app.post("/conversations", alice.bearer(), json!({"kind": "direct", "user_id": bob.id})).await;
    assert_eq!((s, again["id"].as_str()), (StatusCode::OK, Some(id)));
    let (s, other) = app.post("/conversations", bob.bearer(), json!({"kind": "direct", "user_id": "@alice"})).await;
    assert_eq!((s, other["id"].as_str()), (StatusCode::OK, Some(id)));
    // Validation.
    let (s, v) = app.post("/conversations", alice.bearer(), json!({"kind": "direct", "user_id": alice.id})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["fields"]["user_id"].is_string());
    let (s, _) = app.post("/conversations", alice.bearer(), json!({"kind": "smoke"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app.post("/conversations", None, json!({"kind": "direct", "user_id": bob.id})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Only members read or write.
    assert_eq!(app.get(&format!("/conversations/{id}"), carol.bearer()).await.0, StatusCode::NOT_FOUND);
    let (s, _) = app.post(&format!("/conversations/{id}/messages"), carol.bearer(), json!({"body": "hi"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/conversations/{id}/messages"), carol.bearer()).await.0, StatusCode::NOT_FOUND);
    say(&app, &alice, id, "hello bob").await;
    // A block ends the DM both ways: no sending, no opening.
    let (s, _) = app.post(&format!("/users/{}/block", bob.id), alice.bearer(), json!({})).await;
    assert!(s.is_success());
    let (s, v) =
        app.post(&format!("/conversations/{id}/messages"), bob.bearer(), json!({"body": "still there?"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, _) = app.post(&format!("/conversations/{id}/messages"), alice.bearer(), json!({"body": "bye"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.post("/conversations", bob.bearer(), json!({"kind": "direct", "user_id": alice.id})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Nothing was stored by the refused sends.
    let (_, h) = app.get(&format!("/conversations/{id}/messages"), alice.bearer()).await;
    assert_eq!(h["items"].as_array().unwrap().len(), 1);
}

async fn sends_are_idempotent_under_retry(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob_b").await);
    let conv = dm(&app, &alice, &bob).await;
    let mut bob_ws = WsClient::connect(&app.base, &bob.token).await;
    assert_eq!(bob_ws.hello["data"]["subscriptions"][format!("chat:{conv}")]["result"], "subscribed");
    let path = format!("/conversations/{conv}/messages");
    let body = json!({"body": "once", "client_msg_id": "m-1"});
    let (s1, first) = app.post(&path, alice.bearer(), body.clone()).await;
    let (s2, retry) = app.post(&path, alice.bearer(), body.clone()).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(first["id"], retry["id"]);
    assert_eq!(first["client_msg_id"], "m-1");
    // Ten concurrent retries of another message: one stored, all answered with it.
    let body = json!({"body": "racing", "client_msg_id": "m-2"});
    let answers = futures_util::future::join_all((0..10).map(|_| app.post(&path, alice.bearer(), body.clone()))).await;
    let created = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    assert_eq!(created, 1, "{answers:?}");
    assert!(answers.iter().all(|(s, v)| s.is_success() && v["id"] == answers[0].1["id"]), "{answers:?}");
    // Over the socket, the same key: the stored message again.
    let mut alice_ws = WsClient::connect(&app.base, &alice.token).await;
    let r = alice_ws
        .request(
            json!({"op": "chat.send", "data": {"conversation_id": conv, "body": "racing", "client_msg_id": "m-2"}}),
        )
        .await;
    assert_eq!(r["op"], "ok", "{r}");
    assert_eq!(r["data"]["id"], answers[0].1["id"]);
    // The same client id in another conversation is another message.
    let carol = app.register("carol").await;
    let other = dm(&app, &alice, &carol).await;
    let (s, v) = app
        .post(&format!("/conversations/{other}/messages"), alice.bearer(), json!({"body": "x", "client_msg_id": "m-1"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Bob saw each message exactly once, in order.
    let e1 = bob_ws.expect_event(&format!("chat:{conv}"), "message.created").await;
    let e2 = bob_ws.expect_event(&format!("chat:{conv}"), "message.created").await;
    assert_eq!(e1["data"]["id"], first["id"]);
    assert_eq!(e2["data"]["id"], answers[0].1["id"]);
    let (a, b2): (i64, i64) =
        (e1["seq"].as_str().unwrap().parse().unwrap(), e2["seq"].as_str().unwrap().parse().unwrap());
    assert_eq!(b2, a + 1);
    bob_ws.assert_no_event(Duration::from_millis(300)).await;
    let (_, h) = app.get(&path, bob.bearer()).await;
    assert_eq!(h["items"].as_array().unwrap().len(), 2);
    // Bad input: a clear error, nothing stored.
    for (bad, field) in [
        (json!({"body": ""}), "body"),
        (json!({"body": "x".repeat(4001)}), "body"),
        (json!({"body": "x", "client_msg_id": ""}), "client_msg_id"),
        (json!({"body": "x", "reply_to": "1"}), "reply_to"),
        (json!({"body": "x", "media_ids": ["12345"]}), "media_ids"),
        (json!({"body": "x", "conversation_id": "1"}), "conversation_id"),
    ] {
        let (s, v) = app.post(&path, alice.bearer(), bad.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
        assert!(v["error"]["fields"][field].is_string(), "{bad}: {v}");
    }
    let r = alice_ws.request(json!({"op": "chat.send", "data": {"body": "no conversation"}})).await;
    assert_eq!(r["error"]["code"], "validation_failed", "{r}");
    let r = alice_ws.request(json!({"op": "chat.send", "data": {"conversation_id": conv, "bogus": 1}})).await;
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    let (_, h) = app.get(&path, bob.bearer()).await;
    assert_eq!(h["items"].as_array().unwrap().len(), 2);
}

async fn messages_flow_live_with_edits_deletes_reactions_and_history(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob_b").await);
    let conv = dm(&app, &alice, &bob).await;
    let topic = format!("chat:{conv}");
    let mut bob_ws = WsClient::connect(&app.base, &bob.token).await;
    let mut alice_ws = WsClient::connect(&app.base, &alice.token).await;
    let r = alice_ws
        .request(json!({"op": "chat.send", "data": {"conversation_id": conv, "body": "first", "client_msg_id": "a1"}}))
        .await;
    assert_eq!(r["op"], "ok", "{r}");
    let first = r["data"].clone();
    let e = bob_ws.expect_event(&topic, "message.created").await;
    assert_eq!(e["data"], first, "the event carries the message as stored");
    assert_eq!(e["data"]["sender"]["username"], "alice");
    // Sender's own sockets get it too (their other devices).
    assert_eq!(alice_ws.expect_event(&topic, "message.created").await["data"]["id"], first["id"]);
    // A reply, an edit, a reaction, a deletion.
    let (s, reply) = app
        .post(&format!("/conversations/{conv}/messages"), bob.bearer(), json!({"body": "re", "reply_to": first["id"]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["reply_to"], first["id"]);
    assert_eq!(bob_ws.expect_event(&topic, "message.created").await["data"]["id"], reply["id"]);
    let mid = first["id"].as_str().unwrap();
    let (s, _) =
        app.call(Method::PATCH, &format!("/messages/{mid}"), bob.bearer(), Some(json!({"body": "hijack"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, edited) =
        app.call(Method::PATCH, &format!("/messages/{mid}"), alice.bearer(), Some(json!({"body": "first!"}))).await;
    assert_eq!(s, StatusCode::OK, "{edited}");
    assert_eq!((edited["body"].as_str(), edited["edited"].as_bool()), (Some("first!"), Some(true)));
    assert_eq!(bob_ws.expect_event(&topic, "message.updated").await["data"]["body"], "first!");
    let (s, r) =
        app.call(Method::PUT, &format!("/messages/{mid}/reaction"), bob.bearer(), Some(json!({"type": "love"}))).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["reaction_counts"]["love"], 1);
    let e = bob_ws.expect_event(&topic, "message.reaction").await;
    assert_eq!((e["data"]["message_id"].as_str(), &e["data"]["reaction_counts"]), (Some(mid), &json!({"love": 1})));
    let (s, _) = app.call(Method::DELETE, &format!("/messages/{mid}"), bob.bearer(), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.call(Method::DELETE, &format!("/messages/{mid}"), alice.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let e = bob_ws.expect_event(&topic, "message.deleted").await;
    assert_eq!(e["data"], json!({"id": mid, "conversation_id": conv}));
    let (s, _) =
        app.call(Method::PATCH, &format!("/messages/{mid}"), alice.bearer(), Some(json!({"body": "back"}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a tombstone cannot be edited");
    // History: newest first by default, a tombstone kept, paging both ways.
    for i in 0..5 {
        say(&app, &alice, &conv, &format!("m{i}")).await;
    }
    let path = format!("/conversations/{conv}/messages");
    let (_, page) = app.get(&format!("{path}?limit=3"), bob.bearer()).await;
    let bodies: Vec<&str> = page["items"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["m4", "m3", "m2"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, older) = app.get(&format!("{path}?limit=3&before={cursor}"), bob.bearer()).await;
    let items = older["items"].as_array().unwrap();
    assert_eq!(items.iter().map(|m| m["body"].clone()).collect::<Vec<_>>(), [json!("m1"), json!("m0"), json!("re")]);
    let (_, oldest) =
        app.get(&format!("{path}?limit=3&before={}", older["next_cursor"].as_str().unwrap()), bob.bearer()).await;
    let tomb = &oldest["items"][0];
    assert_eq!((tomb["deleted"].as_bool(), tomb["body"].is_null()), (Some(true), true), "{tomb}");
    assert!(oldest["next_cursor"].is_null());
    let (_, newer) = app.get(&format!("{path}?after={mid}&limit=2"), bob.bearer()).await;
    let bodies: Vec<&str> = newer["items"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["re", "m0"]);
    let (s, _) = app.get(&format!("{path}?after=1&before=2"), bob.bearer()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // The conversation list: last activity first, with the last message.
    let carol = app.register("carol").await;
    let quiet = dm(&app, &bob, &carol).await;
    let (_, list) = app.get("/conversations", bob.bearer()).await;
    let ids: Vec<&str> = list["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [quiet.as_str(), conv.as_str()], "the newest activity first");
    say(&app, &alice, &conv, "latest").await;
    let (_, list) = app.get("/conversations", bob.bearer()).await;
    assert_eq!(list["items"][0]["id"], conv);
    assert_eq!(list["items"][0]["last_message"]["body"], "latest");
}

async fn receipts_and_unread_counts_agree_across_two_devices(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob_b").await);
    let conv = dm(&app, &alice, &bob).await;
    let topic = format!("chat:{conv}");
    let mut phone = WsClient::connect(&app.base, &bob.token).await;
    let mut laptop = WsClient::connect(&app.base, &bob.token).await;
    say(&app, &bob, &conv, "my own").await; // never unread for me
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(say(&app, &alice, &conv, &format!("n{i}")).await["id"].as_str().unwrap().to_string());
    }
    for ws in [&mut phone, &mut laptop] {
        for _ in 0..4 {
            until(ws, &topic, "message.created").await;
        }
    }
    let (_, u) = app.get("/conversations/unread-count", bob.bearer()).await;
    assert_eq!(u, json!({"total": 3, "conversations": [{"conversation_id": conv, "unread_count": 3}]}));
    let (_, c) = app.get(&format!("/conversations/{conv}"), bob.bearer()).await;
    assert_eq!(c["unread_count"], 3);
    // Sending reads the conversation up to one's own message.
    let (_, c) = app.get(&format!("/conversations/{conv}"), alice.bearer()).await;
    assert_eq!(c["unread_count"], 0);
    // The phone reads up to the second message: both devices (and alice) hear of it.
    let r = phone.request(json!({"op": "chat.read", "data": {"conversation_id": conv, "message_id": sent[1]}})).await;
    assert_eq!(r["op"], "ok", "{r}");
    for ws in [&mut phone, &mut laptop] {
        let e = ws.expect_event(&topic, "read").await;
        assert_eq!(e["data"]["user_id"], bob.id);
        assert_eq!(e["data"]["message_id"], sent[1]);
        assert!(e["seq"].is_string(), "read receipts are durable");
    }
    let (_, u) = app.get("/conversations/unread-count", bob.bearer()).await;
    assert_eq!(u["total"], 1);
    // Going back changes nothing and tells no one.
    let (s, _) = app.post(&format!("/conversations/{conv}/read"), bob.bearer(), json!({"message_id": sent[0]})).await;
    assert_eq!(s, StatusCode::OK);
    laptop.assert_no_event(Duration::from_millis(300)).await;
    assert_eq!(app.get("/conversations/unread-count", bob.bearer()).await.1["total"], 1);
    // A delivery receipt moves the delivered mark only.
    let (s, r) = app
        .post(
            &format!("/conversations/{conv}/read"),
            bob.bearer(),
            json!({"message_id": sent[2], "receipt": "delivered"}),
        )
        .await;
    assert_eq!((s, r["receipt"].as_str()), (StatusCode::OK, Some("delivered")));
    assert_eq!(laptop.expect_event(&topic, "read").await["data"]["receipt"], "delivered");
    assert_eq!(app.get("/conversations/unread-count", bob.bearer()).await.1["total"], 1);
    let (_, c) = app.get(&format!("/conversations/{conv}"), alice.bearer()).await;
    let bob_member = c["members"].as_array().unwrap().iter().find(|m| m["user"]["id"] == bob.id).unwrap().clone();
    assert_eq!(bob_member["last_read_message_id"], sent[1]);
    assert_eq!(bob_member["last_delivered_message_id"], sent[2]);
    // Reading the last one over REST: zero everywhere.
    let (s, _) = app.post(&format!("/conversations/{conv}/read"), bob.bearer(), json!({"message_id": sent[2]})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(phone.expect_event(&topic, "read").await["data"]["message_id"], sent[2]);
    let (_, u) = app.get("/conversations/unread-count", bob.bearer()).await;
    assert_eq!(u, json!({"total": 0, "conversations": []}));
    // A message id from elsewhere is refused.
    let carol = app.register("carol").await;
    let other = dm(&app, &alice, &carol).await;
    let foreign = say(&app, &alice, &other, "elsewhere").await;
    let (s, _) =
        app.post(&format!("/conversations/{conv}/read"), bob.bearer(), json!({"message_id": foreign["id"]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn group_membership_rules_and_live_joins(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (alice, bob, carol, dave) = (
        app.register("alice").await,
        app.register("bob_b").await,
        app.register("carol").await,
        app.register("dave").await,
    );
    let (s, g) = app
        .post(
            "/conversations",
            alice.bearer(),
            json!({"kind": "group", "title": "Plans", "member_ids": [bob.id, bob.id]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let id = g["id"].as_str().unwrap().to_string();
    let topic = format!("chat:{id}");
    let roles: Vec<(String, String)> = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["user"]["username"].as_str().unwrap().into(), m["role"].as_str().unwrap().into()))
        .collect();
    assert_eq!(roles, [("alice".to_string(), "admin".to_string()), ("bob_b".into(), "member".into())]);
    let (s, _) = app.post("/conversations", alice.bearer(), json!({"kind": "group", "title": " "})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) =
        app.post("/conversations", alice.bearer(), json!({"kind": "group", "title": "x", "member_ids": ["999"]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Carol is online before she is added: her socket picks the group up live.
    let mut carol_ws = WsClient::connect(&app.base, &carol.token).await;
    let members = format!("/conversations/{id}/members");
    let (s, _) = app.post(&members, bob.bearer(), json!({"user_ids": [carol.id]})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only admins add");
    let (s, v) = app.post(&members, alice.bearer(), json!({"user_ids": [carol.id]})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let e = carol_ws.expect_event(&topic, "member.added").await;
    assert_eq!(e["data"]["user"]["id"], carol.id);
    let m = say(&app, &bob, &id, "welcome carol").await;
    assert_eq!(carol_ws.expect_event(&topic, "message.created").await["data"]["id"], m["id"]);
    // Outsiders see nothing; members rename only as admins.
    assert_eq!(app.get(&format!("/conversations/{id}"), dave.bearer()).await.0, StatusCode::NOT_FOUND);
    let path = format!("/conversations/{id}");
    let (s, _) = app.call(Method::PATCH, &path, bob.bearer(), Some(json!({"title": "Mine"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = app.call(Method::PATCH, &path, alice.bearer(), Some(json!({"title": "Weekend"}))).await;
    assert_eq!((s, v["title"].as_str()), (StatusCode::OK, Some("Weekend")));
    // Removing someone else takes an admin; the removed member's socket stops.
    let (s, _) = app.call(Method::DELETE, &format!("{members}/{}", carol.id), bob.bearer(), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app.call(Method::DELETE, &format!("{members}/{}", carol.id), alice.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let ended = loop {
        let f = carol_ws.next_frame(Duration::from_secs(10)).await.expect("carol hears she was removed");
        if f["op"] == "unsubscribed" {
            break f;
        }
    };
    assert_eq!(ended["topic"], topic);
    say(&app, &bob, &id, "carol is gone").await;
    carol_ws.assert_no_event(Duration::from_millis(300)).await;
    assert_eq!(app.get(&path, carol.bearer()).await.0, StatusCode::NOT_FOUND);
    // The last admin leaving promotes the longest-standing member.
    let (s, _) = app.call(Method::DELETE, &format!("{members}/{}", alice.id), alice.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, g) = app.get(&path, bob.bearer()).await;
    let ms = g["members"].as_array().unwrap();
    assert_eq!(ms.len(), 1);
    assert_eq!((ms[0]["user"]["id"].as_str(), ms[0]["role"].as_str()), (Some(bob.id.as_str()), Some("admin")));
    // Direct conversations keep their two members; blocked users cannot be added.
    let d = dm(&app, &bob, &dave).await;
    let (s, _) = app.call(Method::DELETE, &format!("/conversations/{d}/members/{}", dave.id), bob.bearer(), None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app.post(&format!("/conversations/{d}/members"), bob.bearer(), json!({"user_ids": [carol.id]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    app.post(&format!("/users/{}/block", bob.id), dave.bearer(), json!({})).await;
    let (s, _) = app.post(&members, bob.bearer(), json!({"user_ids": [dave.id]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn typing_is_transient_and_throttled(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob_b").await);
    let conv = dm(&app, &alice, &bob).await;
    let topic = format!("chat:{conv}");
    let mut alice_ws = WsClient::connect(&app.base, &alice.token).await;
    let mut bob_ws = WsClient::connect(&app.base, &bob.token).await;
    let start = bob_ws.hello["data"]["subscriptions"][&topic]["seq"].as_str().unwrap().to_string();
    let r = alice_ws.request(json!({"op": "chat.typing", "data": {"conversation_id": conv}})).await;
    assert_eq!(r["data"]["sent"], true, "{r}");
    let e = bob_ws.expect_event(&topic, "typing").await;
    assert_eq!(e["data"]["user_id"], alice.id);
    assert!(e["data"]["expires_in_ms"].as_u64().unwrap() > 0);
    assert!(e.get("seq").is_none(), "typing carries no seq: {e}");
    // Right away again: throttled, nobody hears it.
    let r = alice_ws.request(json!({"op": "chat.typing", "data": {"conversation_id": conv}})).await;
    assert_eq!(r["data"]["sent"], false, "{r}");
    bob_ws.assert_no_event(Duration::from_millis(300)).await;
    // Not a member: refused.
    let carol = app.register("carol").await;
    let mut carol_ws = WsClient::connect(&app.base, &carol.token).await;
    let r = carol_ws.request(json!({"op": "chat.typing", "data": {"conversation_id": conv}})).await;
    assert_eq!(r["error"]["code"], "not_found", "{r}");
    // Resuming from before the typing replays the durable events only.
    let m = say(&app, &alice, &conv, "typed it").await;
    let mut again = WsClient::connect_resuming(&app.base, &bob.token, json!({ &topic: start })).await;
    let e = again.expect_event(&topic, "message.created").await;
    assert_eq!(e["data"]["id"], m["id"]);
    again.assert_no_event(Duration::from_millis(300)).await;
}

async fn chat_works_across_two_instances_with_redis(b: Backend) {
    let Some(apps) = TestApp::redis_cluster(b, 2).await else { return };
    let (a, b2) = (&apps[0], &apps[1]);
    let (alice, bob, carol) = (a.register("alice").await, a.register("bob_b").await, a.register("carol").await);
    // Bob and carol are online on instance B before the group exists.
    let mut bob_ws = WsClient::connect(&b2.base, &bob.token).await;
    let mut carol_ws = WsClient::connect(&b2.base, &carol.token).await;
    let (s, g) = a
        .post("/conversations", alice.bearer(), json!({"kind": "group", "title": "Two nodes", "member_ids": [bob.id]}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = g["id"].as_str().unwrap().to_string();
    let topic = format!("chat:{id}");
    until(&mut bob_ws, &topic, "member.added").await;
    let m = say(a, &alice, &id, "from A").await;
    assert_eq!(until(&mut bob_ws, &topic, "message.created").await["data"]["id"], m["id"]);
    // A retry through the other instance finds the stored message.
    let (s, retry) = b2
        .post(
            &format!("/conversations/{id}/messages"),
            alice.bearer(),
            json!({"body": "from A", "client_msg_id": format!("{}-from A", alice.id)}),
        )
        .await;
    assert_eq!((s, &retry["id"]), (StatusCode::OK, &m["id"]));
    // Adding carol on A reaches her socket on B; her receipts reach bob on B.
    a.post(&format!("/conversations/{id}/members"), alice.bearer(), json!({"user_ids": [carol.id]})).await;
    until(&mut carol_ws, &topic, "member.added").await;
    let r = carol_ws.request(json!({"op": "chat.read", "data": {"conversation_id": id, "message_id": m["id"]}})).await;
    assert_eq!(r["op"], "ok", "{r}");
    let e = until(&mut bob_ws, &topic, "read").await;
    assert_eq!(e["data"]["user_id"], carol.id);
    bob_ws.assert_no_event(Duration::from_millis(300)).await;
}

async fn members_without_an_open_socket_get_a_message_notification(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (alice, bob, carol) = (app.register("alice").await, app.register("bob_b").await, app.register("carol").await);
    let (s, g) = app
        .post(
            "/conversations",
            alice.bearer(),
            json!({"kind": "group", "title": "g", "member_ids": [bob.id, carol.id]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = g["id"].as_str().unwrap().to_string();
    // Carol is online, bob is not.
    let mut carol_ws = WsClient::connect(&app.base, &carol.token).await;
    say(&app, &alice, &id, "anyone there?").await;
    until(&mut carol_ws, &format!("chat:{id}"), "message.created").await;
    let n = eventually(Duration::from_secs(10), || async {
        let (_, list) = app.get("/notifications", bob.bearer()).await;
        list["items"].as_array().and_then(|items| items.iter().find(|n| n["kind"] == "message").cloned())
    })
    .await;
    assert_eq!(n["actors"][0]["id"], alice.id, "{n}");
    // The job that notified bob has decided for carol too: online, nothing.
    let (_, list) = app.get("/notifications", carol.bearer()).await;
    assert!(list["items"].as_array().unwrap().iter().all(|n| n["kind"] != "message"), "{list}");
    let (_, list) = app.get("/notifications", alice.bearer()).await;
    assert!(list["items"].as_array().unwrap().is_empty(), "never for one's own message: {list}");
}
