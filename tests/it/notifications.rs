//! Notifications: each kind created once and delivered live, grouping, removal with the
//! source, read state across sockets, e-mail through a real SMTP listener (with retries and
//! across a restart), chat messages for offline members, and delivery across instances.

use std::time::Duration;

use chorus::domain::Id;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::schemas::Schemas;
use crate::support::ws::WsClient;
use crate::support::{Backend, TestApp, TestUser, eventually, redis_available, redis_url, smtp};

both_backends!(
    follows_requests_and_approvals_notify_once_and_live,
    comments_replies_and_mentions_notify_the_right_people,
    reactions_on_one_target_are_grouped_and_removal_shrinks_the_group,
    deleting_the_source_removes_its_notifications,
    muted_and_blocked_accounts_produce_no_notifications,
    chat_messages_notify_only_offline_unblocked_members,
    read_one_and_read_all_update_counts_and_reach_other_sockets,
    email_goes_out_only_for_kinds_the_user_enabled,
    an_email_job_failing_twice_is_retried_until_the_mail_arrives,
    a_notification_email_survives_a_restart,
    a_notification_reaches_a_socket_on_another_instance,
    reactions_to_a_comment_on_a_post_its_author_no_longer_sees_notify_no_one,
);

const WAIT: Duration = Duration::from_secs(15);

fn uid(u: &TestUser) -> Id {
    Id(u.id.parse().unwrap())
}

/// The next event on the `notification` topic (other topics' events are skipped).
async fn next_notification(ws: &mut WsClient) -> Value {
    loop {
        let f = ws.next_event().await;
        if f["topic"] == "notification" {
            return f;
        }
    }
}

/// The next `notification.created`, its data checked against the protocol schema.
async fn created(ws: &mut WsClient) -> Value {
    let f = next_notification(ws).await;
    assert_eq!(f["event"], "notification.created", "{f}");
    assert!(f["seq"].is_string(), "durable topic: the event has a seq: {f}");
    Schemas::load().check("events/notification.created.json", &f["data"]);
    f["data"].clone()
}

/// Asserts that no event arrives on the `notification` topic for `dur`.
async fn no_notification(ws: &mut WsClient, dur: Duration) {
    let deadline = tokio::time::Instant::now() + dur;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        match ws.next_frame(left).await {
            None => return,
            Some(f) => assert!(f["topic"] != "notification", "unexpected notification {f}"),
        }
    }
}

/// Waits until no notification or e-mail job is left to run: whatever they were going to
/// create exists now. A dead-lettered `notify` job fails the test: "nothing was created"
/// must mean the job decided so, not that it crashed.
async fn settle(app: &TestApp) {
    eventually(WAIT, || async {
        let mut c = app.state.store.conn().await.unwrap();
        let sql = "SELECT COUNT(*) FROM jobs WHERE kind IN ('notify', 'send_email') AND status <> 'dead'";
        let n: i64 = chorus::run!(c.ex(), c => sqlx::query_scalar(sql).fetch_one(c).await).unwrap();
        (n == 0).then_some(())
    })
    .await;
    let mut c = app.state.store.conn().await.unwrap();
    let sql = "SELECT COUNT(*) FROM jobs WHERE kind = 'notify' AND status = 'dead'";
    let dead: i64 = chorus::run!(c.ex(), c => sqlx::query_scalar(sql).fetch_one(c).await).unwrap();
    assert_eq!(dead, 0, "a notify job was dead-lettered");
}

async fn jobs_of(app: &TestApp, kind: &str) -> i64 {
    let mut c = app.state.store.conn().await.unwrap();
    let sql = "SELECT COUNT(*) FROM jobs WHERE kind = $1";
    chorus::run!(c.ex(), c => sqlx::query_scalar(sql).bind(kind).fetch_one(c).await).unwrap()
}

async fn list(app: &TestApp, u: &TestUser) -> Vec<Value> {
    let (s, body) = app.get("/notifications", u.bearer()).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn unread(app: &TestApp, u: &TestUser) -> i64 {
    let (s, body) = app.get("/notifications/unread-count", u.bearer()).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    body["count"].as_i64().unwrap()
}

async fn ok(app: &TestApp, method: Method, path: &str, u: &TestUser, body: Option<Value>) -> Value {
    let (s, v) = app.call(method.clone(), path, u.bearer(), body).await;
    assert!(s.is_success(), "{method} {path}: {s} {v}");
    v
}

async fn post(app: &TestApp, u: &TestUser, caption: &str) -> String {
    ok(app, Method::POST, "/posts", u, Some(json!({"caption": caption}))).await["id"].as_str().unwrap().to_string()
}

async fn comment(app: &TestApp, u: &TestUser, post: &str, body: &str, parent: Option<&str>) -> String {
    let req = json!({"body": body, "parent_id": parent});
    ok(app, Method::POST, &format!("/posts/{post}/comments"), u, Some(req)).await["id"].as_str().unwrap().to_string()
}

async fn react(app: &TestApp, u: &TestUser, path: &str, kind: &str) {
    ok(app, Method::PUT, path, u, Some(json!({"type": kind}))).await;
}

async fn follow(app: &TestApp, u: &TestUser, target: &TestUser) {
    ok(app, Method::POST, &format!("/users/{}/follow", target.id), u, None).await;
}

async fn set_private(app: &TestApp, u: &TestUser) {
    ok(app, Method::PATCH, "/users/me", u, Some(json!({"is_private": true}))).await;
}

fn actor_ids(n: &Value) -> Vec<String> {
    n["actors"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()).collect()
}

async fn follows_requests_and_approvals_notify_once_and_live(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (alice, bob, carol) = (app.register("alice").await, app.register("bob").await, app.register("carol").await);
    let mut ws_alice = WsClient::connect(&app.base, &alice.token).await;
    let mut ws_bob = WsClient::connect(&app.base, &bob.token).await;

    follow(&app, &bob, &alice).await;
    let n = created(&mut ws_alice).await;
    assert_eq!(n["kind"], "follow");
    assert_eq!(n["read"], false);
    assert_eq!(n["actor_count"], 1);
    assert_eq!(actor_ids(&n), vec![bob.id.clone()]);
    assert_eq!(n["target"], json!({"type": "user", "id": bob.id}));
    assert_eq!(n["text"], "bob started following you");
    // A repeated follow is a conflict and creates nothing more.
    let (s, _) = app.call(Method::POST, &format!("/users/{}/follow", alice.id), bob.bearer(), None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    settle(&app).await;
    no_notification(&mut ws_alice, Duration::from_millis(300)).await;
    assert_eq!(list(&app, &alice).await.len(), 1);
    assert_eq!(list(&app, &bob).await.len(), 0, "the actor is never notified of their own action");

    // A private account gets a request, the requester the approval.
    set_private(&app, &carol).await;
    let mut ws_carol = WsClient::connect(&app.base, &carol.token).await;
    follow(&app, &bob, &carol).await;
    let n = created(&mut ws_carol).await;
    assert_eq!((n["kind"].as_str(), n["text"].as_str()), (Some("follow_request"), Some("bob asked to follow you")));
    ok(&app, Method::POST, &format!("/users/me/follow-requests/{}/approve", bob.id), &carol, None).await;
    let n = created(&mut ws_bob).await;
    assert_eq!(n["kind"], "follow_approved");
    assert_eq!(n["target"], json!({"type": "user", "id": carol.id}));
    assert_eq!(actor_ids(&n), vec![carol.id.clone()]);
    // The answered request no longer asks anything of carol.
    let kinds: Vec<String> = list(&app, &carol).await.iter().map(|n| n["kind"].as_str().unwrap().to_string()).collect();
    assert!(!kinds.contains(&"follow_request".to_string()), "{kinds:?}");
}

async fn comments_replies_and_mentions_notify_the_right_people(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (alice, bob, carol) = (app.register("alice").await, app.register("bob").await, app.register("carol").await);
    let mut ws_alice = WsClient::connect(&app.base, &alice.token).await;
    let mut ws_bob = WsClient::connect(&app.base, &bob.token).await;
    let mut ws_carol = WsClient::connect(&app.base, &carol.token).await;
    let p = post(&app, &alice, "sunset").await;

    let c1 = comment(&app, &bob, &p, "lovely, look @carol", None).await;
    let n = created(&mut ws_alice).await;
    assert_eq!(n["kind"], "comment");
    assert_eq!(n["target"], json!({"type": "comment", "id": c1}));
    assert_eq!((n["post_id"].as_str(), n["comment_id"].as_str()), (Some(p.as_str()), Some(c1.as_str())));
    assert_eq!(n["preview"], "lovely, look @carol");
    assert_eq!(n["text"], "bob commented on your post");
    let n = created(&mut ws_carol).await;
    assert_eq!((n["kind"].as_str(), n["text"].as_str()), (Some("mention"), Some("bob mentioned you in a comment")));

    // Alice replies: bob hears of the reply; alice, on her own post, hears nothing.
    let r = comment(&app, &alice, &p, "thanks!", Some(&c1)).await;
    let n = created(&mut ws_bob).await;
    assert_eq!(n["kind"], "reply");
    assert_eq!(n["comment_id"], r);
    comment(&app, &alice, &p, "my own comment", None).await;
    // Editing a comment without new mentions notifies nobody again.
    ok(&app, Method::PATCH, &format!("/comments/{c1}"), &bob, Some(json!({"body": "lovely! @carol"}))).await;
    settle(&app).await;
    no_notification(&mut ws_alice, Duration::from_millis(300)).await;
    no_notification(&mut ws_carol, Duration::from_millis(100)).await;
    assert_eq!(list(&app, &alice).await.len(), 1);
    assert_eq!(list(&app, &carol).await.len(), 1);

    // A mention in a post, and a new mention added by an edit.
    let p2 = post(&app, &alice, "with @bob").await;
    let n = created(&mut ws_bob).await;
    assert_eq!((n["kind"].as_str(), n["target"]["type"].as_str()), (Some("mention"), Some("post")));
    assert_eq!(n["target"]["id"], p2);
    ok(&app, Method::PATCH, &format!("/posts/{p2}"), &alice, Some(json!({"caption": "with @bob and @carol"}))).await;
    let n = created(&mut ws_carol).await;
    assert_eq!((n["kind"].as_str(), n["post_id"].as_str()), (Some("mention"), Some(p2.as_str())));
    settle(&app).await;
    no_notification(&mut ws_bob, Duration::from_millis(200)).await;
}

async fn reactions_on_one_target_are_grouped_and_removal_shrinks_the_group(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.register("alice").await;
    let others = [app.register("bob").await, app.register("carol").await, app.register("dave").await];
    let mut ws = WsClient::connect(&app.base, &alice.token).await;
    let p = post(&app, &alice, "popular").await;
    let path = format!("/posts/{p}/reaction");

    let mut id = None;
    for (i, u) in others.iter().enumerate() {
        react(&app, u, &path, "love").await;
        let n = created(&mut ws).await;
        assert_eq!(n["kind"], "reaction");
        assert_eq!(n["actor_count"], i as i64 + 1);
        assert_eq!(n["actors"][0]["id"], u.id, "latest actor first");
        assert_eq!(*id.get_or_insert(n["id"].clone()), n["id"], "one notification for the group");
    }
    let items = list(&app, &alice).await;
    assert_eq!(items.len(), 1);
    assert_eq!(actor_ids(&items[0]), vec![others[2].id.clone(), others[1].id.clone(), others[0].id.clone()]);
    assert_eq!(items[0]["text"], "dave and 2 others reacted to your post");
    assert_eq!(items[0]["target"], json!({"type": "post", "id": p}));

    // Switching type, or the owner's own reaction, adds nothing.
    react(&app, &others[0], &path, "like").await;
    react(&app, &alice, &path, "like").await;
    settle(&app).await;
    no_notification(&mut ws, Duration::from_millis(300)).await;
    assert_eq!(list(&app, &alice).await[0]["actor_count"], 3);

    // Removing a reaction takes its actor out; the last one takes the notification.
    ok(&app, Method::DELETE, &path, &others[1], None).await;
    let items = list(&app, &alice).await;
    assert_eq!(items[0]["actor_count"], 2);
    assert_eq!(actor_ids(&items[0]), vec![others[2].id.clone(), others[0].id.clone()]);
    assert_eq!(items[0]["text"], "dave and 1 other reacted to your post");
    ok(&app, Method::DELETE, &path, &others[0], None).await;
    ok(&app, Method::DELETE, &path, &others[2], None).await;
    assert!(list(&app, &alice).await.is_empty());

    // Once read, the group is closed: the next reaction starts a new notification.
    react(&app, &others[0], &path, "love").await;
    let first = created(&mut ws).await;
    ok(&app, Method::POST, &format!("/notifications/{}/read", first["id"].as_str().unwrap()), &alice, None).await;
    assert_eq!(next_notification(&mut ws).await["event"], "notifications.read");
    react(&app, &others[1], &path, "love").await;
    let second = created(&mut ws).await;
    assert_ne!(first["id"], second["id"]);
    assert_eq!(second["actor_count"], 1);

    // Reactions on a comment point at the comment.
    let c = comment(&app, &alice, &p, "my comment", None).await;
    react(&app, &others[2], &format!("/comments/{c}/reaction"), "support").await;
    let n = created(&mut ws).await;
    assert_eq!(n["target"], json!({"type": "comment", "id": c}));
    assert_eq!((n["post_id"].as_str(), n["comment_id"].as_str()), (Some(p.as_str()), Some(c.as_str())));
    assert_eq!(n["text"], "dave reacted to your comment");
}

async fn deleting_the_source_removes_its_notifications(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (alice, bob, carol) = (app.register("alice").await, app.register("bob").await, app.register("carol").await);
    let mut ws = WsClient::connect(&app.base, &alice.token).await;
    let kinds = |items: Vec<Value>| items.iter().map(|n| n["kind"].as_str().unwrap().to_string()).collect::<Vec<_>>();

    // Unfollow.
    follow(&app, &bob, &alice).await;
    created(&mut ws).await;
    ok(&app, Method::DELETE, &format!("/users/{}/follow", alice.id), &bob, None).await;
    assert!(list(&app, &alice).await.is_empty());

    // A comment deleted outright, and one kept as a tombstone (it has a reply).
    let p = post(&app, &alice, "post").await;
    let c1 = comment(&app, &bob, &p, "first", None).await;
    created(&mut ws).await;
    let c2 = comment(&app, &bob, &p, "second", None).await;
    created(&mut ws).await;
    comment(&app, &carol, &p, "reply", Some(&c2)).await;
    created(&mut ws).await; // carol's reply also comments on alice's post
    assert_eq!(list(&app, &alice).await.len(), 3);
    ok(&app, Method::DELETE, &format!("/comments/{c1}"), &bob, None).await;
    ok(&app, Method::DELETE, &format!("/comments/{c2}"), &bob, None).await;
    let left = list(&app, &alice).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["actors"][0]["id"], carol.id);

    // The post itself: every notification about it goes.
    react(&app, &bob, &format!("/posts/{p}/reaction"), "love").await;
    created(&mut ws).await;
    assert_eq!(kinds(list(&app, &alice).await), vec!["reaction", "comment"]);
    ok(&app, Method::DELETE, &format!("/posts/{p}"), &alice, None).await;
    assert!(list(&app, &alice).await.is_empty());

    // A declined request.
    set_private(&app, &alice).await;
    follow(&app, &carol, &alice).await;
    assert_eq!(created(&mut ws).await["kind"], "follow_request");
    ok(&app, Method::DELETE, &format!("/users/me/follow-requests/{}", carol.id), &alice, None).await;
    assert!(list(&app, &alice).await.is_empty());
    assert_eq!(unread(&app, &alice).await, 0);
}

async fn muted_and_blocked_accounts_produce_no_notifications(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (alice, bob, carol) = (app.register("alice").await, app.register("bob").await, app.register("carol").await);
    let mut ws = WsClient::connect(&app.base, &alice.token).await;
    let p = post(&app, &alice, "post").await;

    ok(&app, Method::POST, &format!("/users/{}/mute", bob.id), &alice, None).await;
    follow(&app, &bob, &alice).await;
    comment(&app, &bob, &p, "hello from a muted account", None).await;
    react(&app, &bob, &format!("/posts/{p}/reaction"), "love").await;
    settle(&app).await;
    no_notification(&mut ws, Duration::from_millis(300)).await;
    assert!(list(&app, &alice).await.is_empty());

    // Blocking takes the blocked account out of existing notifications.
    react(&app, &carol, &format!("/posts/{p}/reaction"), "love").await;
    created(&mut ws).await;
    ok(&app, Method::POST, &format!("/users/{}/block", carol.id), &alice, None).await;
    assert!(list(&app, &alice).await.is_empty());
    assert_eq!(unread(&app, &alice).await, 0);
}

async fn chat_messages_notify_only_offline_unblocked_members(b: Backend) {
    // Presence in Redis where it is up: the job asks it for every member in one pipeline
    // (in-memory presence is covered by chat's members_without_an_open_socket_… test).
    let redis = redis_available().await;
    let app = TestApp::spawn_with(b, |c| {
        if redis {
            c.redis_url = Some(redis_url());
            c.redis_namespace = format!("t{}", rand::random::<u64>());
            c.jwt_secret = Some("a-test-secret-that-is-at-least-32-chars".into());
        }
    })
    .await;
    let names = ["alice", "bob", "carol", "dave", "erin", "frank"];
    let mut users = Vec::new();
    for n in names {
        users.push(app.register(n).await);
    }
    let [alice, bob, carol, dave, erin, frank] = &users[..] else { unreachable!() };
    // One group of all six, through the chat API (the real hook in `chat::send`).
    let others: Vec<&str> = users[1..].iter().map(|u| u.id.as_str()).collect();
    let (s, g) = app
        .post("/conversations", alice.bearer(), json!({"kind": "group", "title": "all", "member_ids": others}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let conversation = g["id"].as_str().unwrap().to_string();
    // carol is online; dave blocked alice; erin muted her (all still members).
    let _carol_socket = WsClient::connect(&app.base, &carol.token).await;
    eventually(WAIT, || async { app.state.presence.status(uid(carol)).await.unwrap().online.then_some(()) }).await;
    ok(&app, Method::POST, &format!("/users/{}/block", alice.id), dave, None).await;
    ok(&app, Method::POST, &format!("/users/{}/mute", alice.id), erin, None).await;

    let send = |sender: &TestUser, text: &'static str| {
        let (app, conversation, token) = (&app, conversation.clone(), sender.token.clone());
        async move {
            let (s, m) =
                app.post(&format!("/conversations/{conversation}/messages"), Some(&token), json!({"body": text})).await;
            assert_eq!(s, StatusCode::CREATED, "{m}");
            m["id"].as_str().unwrap().to_string()
        }
    };
    send(alice, "hi everyone").await;
    settle(&app).await;
    let items = list(&app, bob).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["kind"], "message");
    assert_eq!(items[0]["target"], json!({"type": "conversation", "id": conversation}));
    assert_eq!(items[0]["conversation_id"], conversation.as_str());
    assert_eq!(items[0]["preview"], "hi everyone");
    assert_eq!(items[0]["text"], "alice sent you a message");
    for (u, why) in [(alice, "the sender"), (carol, "online"), (dave, "blocked"), (erin, "muted")] {
        assert!(list(&app, u).await.is_empty(), "{} ({why}) gets no message notification", u.username);
    }

    // Further messages group per conversation while unread.
    send(alice, "second message").await;
    settle(&app).await; // separate jobs may run in any order: keep the preview's order known
    let franks = send(frank, "frank here").await;
    settle(&app).await;
    let items = list(&app, bob).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["actor_count"], 2);
    assert_eq!(items[0]["preview"], "frank here");
    assert_eq!(actor_ids(&items[0]), vec![frank.id.clone(), alice.id.clone()]);
    // A message deleted for everyone is no longer quoted.
    ok(&app, Method::DELETE, &format!("/messages/{franks}"), frank, None).await;
    let items = list(&app, bob).await;
    assert!(items[0]["preview"].is_null(), "{items:?}");
}

async fn read_one_and_read_all_update_counts_and_reach_other_sockets(b: Backend) {
    let app = TestApp::spawn(b).await;
    let alice = app.register("alice").await;
    let mut ws1 = WsClient::connect(&app.base, &alice.token).await;
    let mut ws2 = WsClient::connect(&app.base, &alice.token).await;
    let fans = [app.register("bob").await, app.register("carol").await, app.register("dave").await];
    for f in &fans {
        follow(&app, f, &alice).await;
        created(&mut ws1).await;
        created(&mut ws2).await;
    }
    assert_eq!(unread(&app, &alice).await, 3);
    let (s, page) = app.get("/notifications?unread_only=true&limit=2", alice.bearer()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["actors"][0]["id"], fans[2].id, "most recent first");
    let cursor = page["next_cursor"].as_str().expect("a second page").to_string();
    let (_, page2) = app.get(&format!("/notifications?unread_only=true&limit=2&cursor={cursor}"), alice.bearer()).await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert!(page2["next_cursor"].is_null());
    let oldest = page2["items"][0]["id"].as_str().unwrap().to_string();

    ok(&app, Method::POST, &format!("/notifications/{oldest}/read"), &alice, None).await;
    let f = next_notification(&mut ws2).await;
    assert_eq!(f["event"], "notifications.read");
    assert_eq!(f["data"], json!({"ids": [oldest]}));
    Schemas::load().check("events/notifications.read.json", &f["data"]);
    assert_eq!(unread(&app, &alice).await, 2);
    let (_, unread_page) = app.get("/notifications?unread_only=true", alice.bearer()).await;
    assert!(unread_page["items"].as_array().unwrap().iter().all(|n| n["id"] != oldest.as_str()));
    let all = list(&app, &alice).await;
    assert_eq!(all.len(), 3, "read ones are still listed");
    assert_eq!(all.iter().find(|n| n["id"] == oldest.as_str()).unwrap()["read"], true);

    // Idempotent, and nobody else's.
    ok(&app, Method::POST, &format!("/notifications/{oldest}/read"), &alice, None).await;
    let (s, _) = app.call(Method::POST, &format!("/notifications/{oldest}/read"), fans[0].bearer(), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    ok(&app, Method::POST, "/notifications/read-all", &alice, None).await;
    let f = next_notification(&mut ws2).await;
    assert_eq!((f["event"].as_str(), &f["data"]), (Some("notifications.read"), &json!({"all": true})));
    Schemas::load().check("events/notifications.read.json", &f["data"]);
    assert_eq!(unread(&app, &alice).await, 0);
    // ws1 saw the same, in order.
    assert_eq!(next_notification(&mut ws1).await["data"], json!({"ids": [oldest]}));
    assert_eq!(next_notification(&mut ws1).await["data"], json!({"all": true}));
}

async fn email_goes_out_only_for_kinds_the_user_enabled(b: Backend) {
    let (smtp_url, mut inbox) = smtp::start().await;
    let app = TestApp::spawn_with(b, |c| c.smtp_url = Some(smtp_url)).await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let settings = json!({"notifications": {
        "comment": {"email": true},
        "follow": {"email": false},
        "reaction": {"in_app": false, "email": true},
    }});
    ok(&app, Method::PUT, "/users/me/settings", &alice, Some(settings)).await;
    let mut ws = WsClient::connect(&app.base, &alice.token).await;

    // Follow: in the app, no e-mail.
    follow(&app, &bob, &alice).await;
    assert_eq!(created(&mut ws).await["kind"], "follow");
    settle(&app).await; // an e-mail job, had there been one, has delivered by now
    assert!(inbox.try_recv().is_err(), "no mail for a kind with e-mail off");

    // Comment: in the app and by e-mail.
    let p = post(&app, &alice, "post").await;
    comment(&app, &bob, &p, "what a view", None).await;
    assert_eq!(created(&mut ws).await["kind"], "comment");
    let mail = tokio::time::timeout(WAIT, inbox.recv()).await.expect("comment mail").unwrap();
    assert_eq!(mail.to, vec!["alice@example.com".to_string()]);
    assert!(mail.data.contains("Subject: bob commented on your post"), "{}", mail.data);
    assert!(mail.body().contains("what a view"), "{}", mail.body());

    // Reaction: e-mail only, nothing in the app.
    react(&app, &bob, &format!("/posts/{p}/reaction"), "love").await;
    let mail = tokio::time::timeout(WAIT, inbox.recv()).await.expect("reaction mail").unwrap();
    assert!(mail.data.contains("Subject: bob reacted to your post"), "{}", mail.data);
    settle(&app).await;
    no_notification(&mut ws, Duration::from_millis(200)).await;
    assert!(list(&app, &alice).await.iter().all(|n| n["kind"] != "reaction"));
    assert!(inbox.try_recv().is_err());
}

async fn an_email_job_failing_twice_is_retried_until_the_mail_arrives(b: Backend) {
    let (smtp_url, mut inbox, control) = smtp::start_refusing(2).await;
    let app = TestApp::spawn_with(b, |c| {
        c.smtp_url = Some(smtp_url);
        c.jobs.backoff_base_ms = 50;
        c.jobs.backoff_max_ms = 200;
        c.jobs.max_attempts = 5;
    })
    .await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    set_private(&app, &alice).await; // follow requests are e-mailed by default
    follow(&app, &bob, &alice).await;

    let mail = tokio::time::timeout(WAIT, inbox.recv()).await.expect("mail after retries").unwrap();
    assert!(mail.data.contains("Subject: bob asked to follow you"), "{}", mail.data);
    assert_eq!(control.refused(), 2, "two refused attempts, then the third went through");
    settle(&app).await;
    assert_eq!(jobs_of(&app, "send_email").await, 0, "the job completed (not dead-lettered)");
    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    let retries: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("chorus_jobs_total") && l.contains("kind=\"send_email\"") && l.contains("outcome=\"retry\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("retry counter in /metrics");
    assert!(retries >= 2.0, "{retries}");
    assert!(inbox.try_recv().is_err(), "sent once");
}

async fn a_notification_email_survives_a_restart(b: Backend) {
    let (smtp_url, mut inbox, mut control) = smtp::start_refusing(usize::MAX).await;
    let app = TestApp::spawn_with(b, |c| {
        c.smtp_url = Some(smtp_url);
        c.jobs.backoff_base_ms = 50;
        c.jobs.backoff_max_ms = 300;
        c.jobs.max_attempts = 1000;
    })
    .await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    set_private(&app, &alice).await;
    follow(&app, &bob, &alice).await;
    control.wait_refused(1).await;

    let app = app.restart().await;
    assert_eq!(jobs_of(&app, "send_email").await, 1, "the e-mail job is still queued after the restart");
    let refused = control.refused();
    control.wait_refused(refused + 1).await; // the new instance's worker picked it up
    control.accept();
    let mail = tokio::time::timeout(WAIT, inbox.recv()).await.expect("mail after restart").unwrap();
    assert_eq!(mail.to, vec!["alice@example.com".to_string()]);
    assert!(mail.data.contains("Subject: bob asked to follow you"), "{}", mail.data);
    let items = list(&app, &alice).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["kind"], "follow_request");
}

async fn a_notification_reaches_a_socket_on_another_instance(b: Backend) {
    let Some(apps) = TestApp::redis_cluster(b, 2).await else { return };
    let alice = apps[0].register("alice").await;
    let bob = apps[1].register("bob").await;
    let mut on_b = WsClient::connect(&apps[1].base, &alice.token).await;
    let p = post(&apps[0], &alice, "clustered").await;
    comment(&apps[0], &bob, &p, "from instance A", None).await;
    let n = created(&mut on_b).await;
    assert_eq!(n["kind"], "comment");
    assert_eq!(n["actors"][0]["id"], bob.id);
    assert_eq!(unread(&apps[1], &alice).await, 1);
}

async fn reactions_to_a_comment_on_a_post_its_author_no_longer_sees_notify_no_one(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (alice, bob, carol) = (app.register("alice").await, app.register("bob").await, app.register("carol").await);
    set_private(&app, &alice).await;
    for fan in [&bob, &carol] {
        follow(&app, fan, &alice).await;
        ok(&app, Method::POST, &format!("/users/me/follow-requests/{}/approve", fan.id), &alice, None).await;
    }
    let p = post(&app, &alice, "followers only").await;
    let c = comment(&app, &bob, &p, "nice", None).await;
    // Bob stops following the private account: its posts are out of his sight now.
    ok(&app, Method::DELETE, &format!("/users/{}/follow", alice.id), &bob, None).await;
    settle(&app).await;
    let before = list(&app, &bob).await.len();
    react(&app, &carol, &format!("/comments/{c}/reaction"), "like").await;
    settle(&app).await;
    assert_eq!(list(&app, &bob).await.len(), before, "no reaction notification about a post bob cannot see");
    // The same reaction while he can see it does notify (the check is not just refusing).
    let p2 = post(&app, &carol, "public").await;
    let c2 = comment(&app, &bob, &p2, "hello", None).await;
    react(&app, &alice, &format!("/comments/{c2}/reaction"), "like").await;
    settle(&app).await;
    assert!(list(&app, &bob).await.iter().any(|n| n["kind"] == "reaction"));
}
