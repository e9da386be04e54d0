//! The attacks of the policy issue, each tried the way an outsider would and shown to fail:
//! media of DMs and private posts, a block that must end a DM, live events by blocked
//! accounts, a post's author removing a blocked writer's comment, expensive and unbounded
//! paths (reset tokens, metric labels, subscription budgets, connections per user), and
//! the smaller leaks (mentions, feed replays).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::chat::{dm, say};
use crate::media::{fetch, small_jpeg, upload_ready, variant};
use crate::posts::{follow, make_private};
use crate::support::sio::Sio;
use crate::support::ws::WsClient;
use crate::support::{Backend, TestApp, TestUser, smtp};

both_backends!(
    media_follow_what_holds_them,
    a_block_ends_every_interaction_in_a_dm,
    live_events_skip_recipients_blocked_with_their_actor,
    live_events_skip_blocked_recipients_across_instances,
    a_posts_author_removes_a_blocked_writers_comment,
    reset_tokens_are_checked_first_limited_and_end_each_other,
    groups_others_add_me_to_do_not_use_up_my_subscriptions,
    mentions_of_blocked_accounts_are_hidden,
    feed_replays_skip_authors_no_longer_followed,
    one_user_cannot_hold_every_connection,
    nul_characters_are_refused_with_400_not_a_database_error,
    in_a_group_a_block_hides_each_others_messages_live_and_in_replays,
    on_cloudinary_public_media_are_signed_and_private_media_expire,
);

async fn block(app: &TestApp, who: &TestUser, whom: &TestUser) {
    let (s, v) = app.post(&format!("/users/{}/block", whom.id), who.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
}

async fn unblock(app: &TestApp, who: &TestUser, whom: &TestUser) {
    let (s, v) = app.call(Method::DELETE, &format!("/users/{}/block", whom.id), who.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
}

/// A post with one ready image of `who`'s; `(post id, media id)`.
async fn post_with_image(app: &TestApp, who: &TestUser, caption: &str) -> (String, String) {
    let m = upload_ready(app, who, small_jpeg()).await;
    let media = m["id"].as_str().unwrap().to_string();
    let (s, p) = app.post("/posts", who.bearer(), json!({"caption": caption, "media_ids": [media]})).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    (p["id"].as_str().unwrap().to_string(), media)
}

async fn comment(app: &TestApp, who: &TestUser, post: &str, body: &str) -> String {
    let (s, c) = app.post(&format!("/posts/{post}/comments"), who.bearer(), json!({"body": body})).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    c["id"].as_str().unwrap().to_string()
}

async fn media_status(app: &TestApp, id: &str, who: Option<&TestUser>) -> (StatusCode, Value) {
    app.get(&format!("/media/{id}"), who.and_then(|u| u.bearer())).await
}

async fn media_follow_what_holds_them(b: Backend) {
    let app = TestApp::spawn(b).await;
    let [ann, ben, cat, dan, eve] = ["ann", "ben", "cat", "dan", "eve"].map(|n| app.register(n));
    let (ann, ben, cat, dan, eve) = (ann.await, ben.await, cat.await, dan.await, eve.await);

    // An image in a DM: its two members see it (signed URLs), nobody else does.
    let conv = dm(&app, &ann, &ben).await;
    let img = upload_ready(&app, &ann, small_jpeg()).await;
    let img_id = img["id"].as_str().unwrap().to_string();
    let (s, m) = app
        .post(&format!("/conversations/{conv}/messages"), ann.bearer(), json!({"body": "look", "media_ids": [img_id]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    let in_message = m["media"][0]["variants"][0]["url"].as_str().unwrap().to_string();
    assert!(in_message.contains("&sig="), "a message's media URLs are signed: {in_message}");
    for outsider in [None, Some(&cat)] {
        assert_eq!(media_status(&app, &img_id, outsider).await.0, StatusCode::NOT_FOUND, "{outsider:?}");
    }
    let (s, seen) = media_status(&app, &img_id, Some(&ben)).await;
    assert_eq!(s, StatusCode::OK, "the other member sees it");
    assert!(seen.get("attached_to").is_none() && seen.get("failure").is_none(), "{seen}");
    let url = variant(&seen, "feed")["url"].as_str().unwrap().to_string();
    assert_eq!(fetch(&app, &url).await.0, StatusCode::OK, "its signed URL works");
    let unsigned = url.split('?').next().unwrap();
    assert_eq!(fetch(&app, unsigned).await.0, StatusCode::NOT_FOUND, "the bare file URL does not");

    // A private account's post: its approved followers see the media, strangers do not.
    make_private(&app, &dan).await;
    assert_eq!(follow(&app, &eve, &dan).await, "pending");
    let (s, _) = app.post(&format!("/users/me/follow-requests/{}/approve", eve.id), dan.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, private_media) = post_with_image(&app, &dan, "only for followers").await;
    for outsider in [None, Some(&cat)] {
        assert_eq!(media_status(&app, &private_media, outsider).await.0, StatusCode::NOT_FOUND, "{outsider:?}");
    }
    let (s, seen) = media_status(&app, &private_media, Some(&eve)).await;
    assert_eq!(s, StatusCode::OK);
    let url = variant(&seen, "thumb")["url"].as_str().unwrap().to_string();
    assert!(url.contains("&sig="), "{url}");
    assert_eq!(fetch(&app, &url).await.0, StatusCode::OK);
    assert_eq!(fetch(&app, url.split('?').next().unwrap()).await.0, StatusCode::NOT_FOUND);

    // A public post's media are everyone's — but not an account's that blocked me.
    let (_, public_media) = post_with_image(&app, &ann, "for all").await;
    assert_eq!(media_status(&app, &public_media, None).await.0, StatusCode::OK);
    block(&app, &ann, &cat).await;
    assert_eq!(media_status(&app, &public_media, Some(&cat)).await.0, StatusCode::NOT_FOUND);

    // A group member who leaves stops seeing its media at once.
    let (s, g) = app
        .post("/conversations", ann.bearer(), json!({"kind": "group", "title": "g", "member_ids": [ben.id, eve.id]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let group = g["id"].as_str().unwrap().to_string();
    let gimg = upload_ready(&app, &ann, small_jpeg()).await;
    let gimg_id = gimg["id"].as_str().unwrap().to_string();
    let (s, _) =
        app.post(&format!("/conversations/{group}/messages"), ann.bearer(), json!({"media_ids": [gimg_id]})).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(media_status(&app, &gimg_id, Some(&eve)).await.0, StatusCode::OK);
    let (s, _) =
        app.call(Method::DELETE, &format!("/conversations/{group}/members/{}", eve.id), eve.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(media_status(&app, &gimg_id, Some(&eve)).await.0, StatusCode::NOT_FOUND, "a former member");
}

async fn a_block_ends_every_interaction_in_a_dm(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (amy, bob) = (app.register("amy").await, app.register("bob").await);
    let conv = dm(&app, &amy, &bob).await;
    let from_bob = say(&app, &bob, &conv, "hi amy").await;
    let from_amy = say(&app, &amy, &conv, "hi bob").await;
    let (bob_msg, amy_msg) = (from_bob["id"].as_str().unwrap(), from_amy["id"].as_str().unwrap());
    let mut bob_ws = WsClient::connect(&app.base, &bob.token).await;
    block(&app, &amy, &bob).await;

    // Neither side can act in it any more, whoever blocked whom.
    for (who, own, other) in [(&bob, bob_msg, amy_msg), (&amy, amy_msg, bob_msg)] {
        let (s, v) =
            app.call(Method::PATCH, &format!("/messages/{own}"), who.bearer(), Some(json!({"body": "edited"}))).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "edit: {v}");
        let (s, v) = app
            .call(Method::PUT, &format!("/messages/{other}/reaction"), who.bearer(), Some(json!({"type": "love"})))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "react: {v}");
        let (s, v) = app.post(&format!("/conversations/{conv}/read"), who.bearer(), json!({"message_id": other})).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "read mark: {v}");
        let (s, v) = app.post(&format!("/conversations/{conv}/messages"), who.bearer(), json!({"body": "x"})).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "send: {v}");
    }
    let r = bob_ws.request(json!({"op": "chat.typing", "data": {"conversation_id": conv}})).await;
    assert_eq!(r["op"], "error", "{r}");
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    let r = bob_ws.request(json!({"op": "chat.read", "data": {"conversation_id": conv, "message_id": amy_msg}})).await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    // The history stays readable: it is each member's own.
    let (s, _) = app.get(&format!("/conversations/{conv}/messages"), bob.bearer()).await;
    assert_eq!(s, StatusCode::OK);
    // Neither can put the other in a group.
    let (s, v) =
        app.post("/conversations", bob.bearer(), json!({"kind": "group", "title": "t", "member_ids": [amy.id]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // Unblocked, the conversation works again.
    unblock(&app, &amy, &bob).await;
    let (s, v) =
        app.call(Method::PATCH, &format!("/messages/{bob_msg}"), bob.bearer(), Some(json!({"body": "edited"}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// `ann` is blocked by `cat`; `ben` is not. Both watch `dan`'s public post, on the socket
/// door `door` of `watch` (an instance, possibly not the one the comments are written on).
/// `cat` comments, then `dan` does: `ann`'s first `comment.created` must be `dan`'s, `ben`'s
/// must be `cat`'s. After the unblock `cat`'s comments reach `ann` again.
async fn check_block_filter(write: &TestApp, watch: &TestApp) {
    let [ann, ben, cat, dan] = ["ann", "ben", "cat", "dan"].map(|n| write.register(n));
    let (ann, ben, cat, dan) = (ann.await, ben.await, cat.await, dan.await);
    let (s, p) = write.post("/posts", dan.bearer(), json!({"caption": "talk here"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let post = p["id"].as_str().unwrap().to_string();
    let topic = format!("post:{post}");
    block(write, &cat, &ann).await;

    let mut ann_ws = WsClient::connect(&watch.base, &ann.token).await;
    let mut ben_ws = WsClient::connect(&watch.base, &ben.token).await;
    ann_ws.subscribe(&topic).await;
    ben_ws.subscribe(&topic).await;
    let mut sio = Sio::start(&watch.base).await;
    if let Some(sio) = sio.as_mut() {
        sio.connect("ann", "/post", json!({"token": ann.token})).await.unwrap();
        let ack = sio.emit("ann", "subscribe", json!({"topic": topic})).await;
        assert_eq!(ack["ok"], true, "{ack}");
    }

    comment(write, &cat, &post, "from the blocker").await;
    comment(write, &dan, &post, "from the author").await;
    let first = ann_ws.expect_event(&topic, "comment.created").await;
    assert_eq!(first["data"]["author"]["id"], dan.id.as_str(), "ann never gets cat's comment: {first}");
    let first = ben_ws.expect_event(&topic, "comment.created").await;
    assert_eq!(first["data"]["author"]["id"], cat.id.as_str(), "ben does: {first}");
    if let Some(sio) = sio.as_mut() {
        let first = sio.event("ann", "comment.created").await;
        assert_eq!(first["data"]["author"]["id"], dan.id.as_str(), "nor over Socket.IO: {first}");
    }

    unblock(write, &cat, &ann).await;
    // The unblock reaches ann's sessions through their control topic, a moment later.
    // Until it has, cat's comments are still skipped; each round cat comments, then dan,
    // and ann reads up to dan's comment: once cat's arrives before it, the block is lifted.
    for round in 0.. {
        assert!(round < 50, "cat's comments never reach ann again after the unblock");
        comment(write, &cat, &post, &format!("friends again {round}")).await;
        comment(write, &dan, &post, &format!("marker {round}")).await;
        let mut saw_cat = false;
        loop {
            let e = ann_ws.expect_event(&topic, "comment.created").await;
            if e["data"]["author"]["id"] == cat.id.as_str() {
                saw_cat = true;
            } else if e["data"]["body"] == format!("marker {round}").as_str() {
                break;
            }
        }
        if saw_cat {
            break;
        }
    }
}

async fn live_events_skip_recipients_blocked_with_their_actor(b: Backend) {
    let app = TestApp::spawn(b).await;
    check_block_filter(&app, &app).await;
}

async fn live_events_skip_blocked_recipients_across_instances(b: Backend) {
    let apps = TestApp::cluster(b, 2).await;
    check_block_filter(&apps[0], &apps[1]).await;
}

async fn a_posts_author_removes_a_blocked_writers_comment(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (ann, troll, other) = (app.register("ann").await, app.register("troll").await, app.register("other").await);
    let (s, p) = app.post("/posts", ann.bearer(), json!({"caption": "mine"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let post = p["id"].as_str().unwrap().to_string();
    let rude = comment(&app, &troll, &post, "rude").await;
    let kind = comment(&app, &other, &post, "kind").await;
    block(&app, &ann, &troll).await;
    let (s, v) = app.call(Method::DELETE, &format!("/comments/{rude}"), ann.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (_, page) = app.get(&format!("/posts/{post}/comments"), None).await;
    let ids: Vec<&str> = page["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![kind.as_str()], "the rude comment is gone for everyone");
    // Someone else's comment on someone else's post stays theirs.
    let (s, _) = app.call(Method::DELETE, &format!("/comments/{kind}"), troll.bearer(), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "troll no longer sees ann's post");
    let (s, _) =
        app.call(Method::DELETE, &format!("/comments/{kind}"), app.register("xavier").await.bearer(), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

fn token_in(mail: &smtp::Received) -> String {
    mail.body()
        .lines()
        .skip_while(|l| !l.starts_with("Your reset token"))
        .nth(1)
        .map(|l| l.trim().to_string())
        .expect("token in mail")
}

async fn reset_tokens_are_checked_first_limited_and_end_each_other(b: Backend) {
    let (smtp_url, mut inbox) = smtp::start().await;
    let app = TestApp::spawn_with(b, |c| {
        c.smtp_url = Some(smtp_url);
        c.rate_limit.auth_per_ip_per_minute = 5;
        c.rate_limit.auth_ip_burst = 5;
    })
    .await;
    app.register("fay").await;
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let (s, _) = app.post("/auth/password/forgot", None, json!({"email": "fay@example.com"})).await;
        assert_eq!(s, StatusCode::ACCEPTED);
        let mail = tokio::time::timeout(Duration::from_secs(10), inbox.recv()).await.expect("mail").unwrap();
        tokens.push(token_in(&mail));
    }
    // Using one ends the other.
    let (s, _) =
        app.post("/auth/password/reset", None, json!({"token": tokens[0], "new_password": "new pass 1"})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) =
        app.post("/auth/password/reset", None, json!({"token": tokens[1], "new_password": "new pass 2"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "an older e-mail's token no longer works: {v}");
    assert_eq!(v["error"]["fields"]["token"], "is invalid or expired");

    // A password change ends reset tokens too.
    let (s, login) = app.post("/auth/login", None, json!({"login": "fay", "password": "new pass 1"})).await;
    assert_eq!(s, StatusCode::OK);
    let fay = TestUser::from_auth(&login);
    let (s, _) = app.post("/auth/password/forgot", None, json!({"email": "fay@example.com"})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let pending = token_in(&tokio::time::timeout(Duration::from_secs(10), inbox.recv()).await.unwrap().unwrap());
    let (s, _) = app
        .call(
            Method::PUT,
            "/auth/password",
            fay.bearer(),
            Some(json!({"current_password": "new pass 1", "new_password": "new pass 3"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.post("/auth/password/reset", None, json!({"token": pending, "new_password": "new pass 4"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // Guessing is limited per address: 429 with Retry-After once the burst is spent.
    let mut last = None;
    for i in 0..8 {
        let resp = app
            .http
            .post(app.api("/auth/password/reset"))
            .json(&json!({"token": format!("guess-{i}"), "new_password": "whatever 123"}))
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            last = Some(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string));
            break;
        }
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let retry = last.expect("bad reset tokens are rate limited").expect("Retry-After");
    assert!(retry.parse::<u64>().unwrap() >= 1);
    // Password changes are limited per account (and address) as well.
    let mut limited = false;
    for _ in 0..8 {
        let (s, _) = app
            .call(
                Method::PUT,
                "/auth/password",
                fay.bearer(),
                Some(json!({"current_password": "wrong guess", "new_password": "new pass 5"})),
            )
            .await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
        assert!(s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::UNAUTHORIZED, "{s}");
    }
    assert!(limited, "password changes are rate limited");
}

async fn groups_others_add_me_to_do_not_use_up_my_subscriptions(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (me, spammer, friend) =
        (app.register("mia").await, app.register("spammer").await, app.register("friend").await);
    let groups = chorus::realtime::session::MAX_SUBSCRIPTIONS + 4;
    for i in 0..groups {
        let (s, v) = app
            .post(
                "/conversations",
                spammer.bearer(),
                json!({"kind": "group", "title": format!("g{i}"), "member_ids": [me.id]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let mut ws = WsClient::connect(&app.base, &me.token).await;
    let subs = ws.hello["data"]["subscriptions"].as_object().unwrap();
    assert_eq!(subs.keys().filter(|k| k.starts_with("chat:")).count(), groups, "every conversation is watched");
    // …and the topics I choose still fit.
    let (s, p) = app.post("/posts", friend.bearer(), json!({"caption": "hi"})).await;
    assert_eq!(s, StatusCode::CREATED);
    ws.subscribe(&format!("post:{}", p["id"].as_str().unwrap())).await;
    ws.subscribe(&format!("user:{}", friend.id)).await;
}

async fn mentions_of_blocked_accounts_are_hidden(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (ann, cat, viewer, other) = (
        app.register("ann").await,
        app.register("cat").await,
        app.register("viewer").await,
        app.register("other").await,
    );
    let (s, p) = app.post("/posts", ann.bearer(), json!({"caption": "with @cat and @other"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let post = p["id"].as_str().unwrap().to_string();
    let c = comment(&app, &ann, &post, "again @cat").await;
    block(&app, &cat, &viewer).await;
    let names = |v: &Value| -> Vec<String> {
        v["mentions"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap().to_string()).collect()
    };
    let (_, seen) = app.get(&format!("/posts/{post}"), viewer.bearer()).await;
    assert_eq!(names(&seen), vec!["other"], "{seen}");
    let (_, seen) = app.get(&format!("/posts/{post}"), other.bearer()).await;
    assert_eq!(names(&seen), vec!["cat", "other"]);
    let (_, page) = app.get(&format!("/posts/{post}/comments"), viewer.bearer()).await;
    let mine = page["items"].as_array().unwrap().iter().find(|x| x["id"] == c.as_str()).unwrap();
    assert!(names(mine).is_empty(), "{mine}");
}

async fn feed_replays_skip_authors_no_longer_followed(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (reader, gone, kept) = (app.register("reader").await, app.register("gone").await, app.register("kept").await);
    let blocker = app.register("blocker").await;
    follow(&app, &reader, &gone).await;
    follow(&app, &reader, &kept).await;
    follow(&app, &reader, &blocker).await;
    let mut live = WsClient::connect(&app.base, &reader.token).await;
    let (s, g) = app.post("/posts", gone.bearer(), json!({"caption": "soon unfollowed"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let first = live.expect_event("feed", "post.created").await;
    assert_eq!(first["data"]["id"], g["id"]);
    let (s, x) = app.post("/posts", blocker.bearer(), json!({"caption": "soon blocking"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let second = live.expect_event("feed", "post.created").await;
    assert_eq!(second["data"]["id"], x["id"]);
    let (s, k) = app.post("/posts", kept.bearer(), json!({"caption": "still followed"})).await;
    assert_eq!(s, StatusCode::CREATED);
    live.expect_event("feed", "post.created").await;
    live.close().await;

    let (s, _) = app.call(Method::DELETE, &format!("/users/{}/follow", gone.id), reader.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    block(&app, &blocker, &reader).await;
    let mut ws = WsClient::connect(&app.base, &reader.token).await;
    ws.request(json!({"op": "unsubscribe", "topic": "feed"})).await;
    let ack = ws.request(json!({"op": "subscribe", "topic": "feed", "from": "0"})).await;
    assert_eq!(ack["data"]["result"], "resumed", "{ack}");
    let replayed = ws.expect_event("feed", "post.created").await;
    assert_eq!(
        replayed["data"]["id"], k["id"],
        "neither the unfollowed nor the blocking account's post is replayed: {replayed}"
    );
}

async fn one_user_cannot_hold_every_connection(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.hub.max_connections_per_user = 2).await;
    let (greedy, other) = (app.register("greedy").await, app.register("other").await);
    let _a = WsClient::connect(&app.base, &greedy.token).await;
    let b2 = WsClient::connect(&app.base, &greedy.token).await;
    let url = format!("{}?access_token={}", crate::support::ws::ws_url(&app.base), greedy.token);
    let refused = WsClient::try_connect_url(&url).await.err().expect("a third connection is refused");
    assert!(refused.contains("4003"), "{refused}");
    let _o = WsClient::connect(&app.base, &other.token).await; // others are not affected
    b2.close().await;
    // A freed slot can be taken again, once the server has ended the closed session.
    crate::support::eventually(Duration::from_secs(10), || {
        let url = url.clone();
        async move { WsClient::try_connect_url(&url).await.ok() }
    })
    .await;
}

/// Not per backend: the label set is the process's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_labels_come_from_a_closed_set() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let method = Method::from_bytes(b"BREWCOFFEE").unwrap();
    let resp = app.http.request(method, format!("{}/health", app.base)).send().await.unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let resp = app.http.request(Method::GET, format!("{}/no/such/route/12345", app.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let text = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("chorus_http_requests_total"), "{text}");
    assert!(!text.contains("BREWCOFFEE"), "an arbitrary method is no label");
    assert!(text.contains(r#"method="other""#), "it counts as other");
    // (Only the path text: the process-wide metrics hold numbers that may contain any digits.)
    assert!(!text.contains("/no/such/route"), "an unmatched path is no label");
}

/// PostgreSQL `TEXT` cannot hold NUL: found by schemathesis as a 500 on `POST /auth/login`.
async fn nul_characters_are_refused_with_400_not_a_database_error(b: Backend) {
    let app = TestApp::spawn(b).await;
    let u = app.register("nully").await;
    let (s, v) = app.post("/auth/login", None, json!({"login": "a\u{0}b", "password": "password123"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "bad_request");
    let (s, v) = app.post("/posts", u.bearer(), json!({"caption": "nul \u{0} inside"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = app.get("/users/search?q=a%00b", u.bearer()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = app.get("/tags/a%00b/posts", u.bearer()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The text `\u0000` (an escaped backslash) is ordinary text.
    let (s, v) = app.post("/posts", u.bearer(), json!({"caption": "\\u0000 is fine"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let other = app.register("other").await;
    let conv = dm(&app, &u, &other).await;
    let mut ws = WsClient::connect(&app.base, &u.token).await;
    let r = ws.request(json!({"op": "chat.send", "data": {"conversation_id": conv, "body": "x\u{0}"}})).await;
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
}

/// Arbitrary text frames (and arbitrary frames with a known op) on a real `/ws` connection:
/// each gets an `error` frame with a documented code — or an `ok`/`pong` — and the
/// connection stays open. Inputs come from proptest's generators, a fixed seed per run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_frames_get_a_documented_error_and_the_connection_lives() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, TestRng, TestRunner};

    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.hub.client_rate_per_sec = 100_000;
        c.hub.client_burst = 100_000;
    })
    .await;
    let u = app.register("fuzzy").await;
    let mut ws = WsClient::connect(&app.base, &u.token).await.without_log();
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::deterministic_rng(Default::default()));
    let ops = ["subscribe", "unsubscribe", "resume", "auth", "ping", "chat.send", "chat.typing", "chat.read", "x"];
    let field = proptest::prop_oneof![
        proptest::arbitrary::any::<String>().prop_map(Value::from),
        proptest::arbitrary::any::<i64>().prop_map(Value::from),
        proptest::arbitrary::any::<bool>().prop_map(Value::from),
        proptest::strategy::Just(Value::Null),
        proptest::arbitrary::any::<String>().prop_map(|s| json!({ s: [1, "x"] })),
    ];
    let documented = [
        "bad_frame",
        "unknown_op",
        "validation_failed",
        "bad_request",
        "not_found",
        "forbidden",
        "unauthorized",
        "rate_limited",
    ];
    for i in 0..300u64 {
        let frame = if i % 2 == 0 {
            proptest::arbitrary::any::<String>().new_tree(&mut runner).unwrap().current()
        } else {
            let op = ops[(i as usize / 2) % ops.len()];
            let mut f = json!({"op": op});
            for k in ["topic", "from", "positions", "token", "data"] {
                f[k] = field.new_tree(&mut runner).unwrap().current();
            }
            f.to_string()
        };
        // A frame that happens to be a valid request is answered too; the reply is the
        // next frame (the user has no other traffic).
        ws.send_text(&frame).await;
        let reply = ws.next_frame(Duration::from_secs(10)).await.unwrap_or_else(|| panic!("no reply to {frame:?}"));
        match reply["op"].as_str() {
            Some("ok" | "pong" | "event" | "resync_required" | "unsubscribed") => {}
            Some("error") => {
                let code = reply["error"]["code"].as_str().unwrap_or_default();
                assert!(documented.contains(&code), "{frame:?} got undocumented {reply}");
            }
            _ => panic!("{frame:?} got {reply}"),
        }
        assert!(!ws.ended(), "the connection closed after {frame:?}");
    }
}

/// A group both stay in after a block: neither gets the other's messages, live (durable
/// `chat:` topic, the session skips them and keeps its position) or replayed; the third
/// member gets everything.
async fn in_a_group_a_block_hides_each_others_messages_live_and_in_replays(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (amy, bob, cal) = (app.register("amy").await, app.register("bob").await, app.register("cal").await);
    let (s, g) = app
        .post("/conversations", amy.bearer(), json!({"kind": "group", "title": "g", "member_ids": [bob.id, cal.id]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let conv = g["id"].as_str().unwrap().to_string();
    let topic = format!("chat:{conv}");
    block(&app, &amy, &bob).await;
    let mut bob_ws = WsClient::connect(&app.base, &bob.token).await;
    let mut cal_ws = WsClient::connect(&app.base, &cal.token).await;
    let mut amy_ws = WsClient::connect(&app.base, &amy.token).await;

    say(&app, &amy, &conv, "from amy").await;
    say(&app, &cal, &conv, "from cal").await;
    say(&app, &bob, &conv, "from bob").await;
    say(&app, &cal, &conv, "cal again").await;
    let bodies = |evs: Vec<Value>| -> Vec<String> {
        evs.iter().map(|e| e["data"]["body"].as_str().unwrap().to_string()).collect()
    };
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(bob_ws.expect_event(&topic, "message.created").await);
    }
    assert_eq!(bodies(got), ["from cal", "from bob", "cal again"], "bob never gets amy's message");
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(amy_ws.expect_event(&topic, "message.created").await);
    }
    assert_eq!(bodies(got), ["from amy", "from cal", "cal again"], "amy never gets bob's message");
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(cal_ws.expect_event(&topic, "message.created").await);
    }
    assert_eq!(bodies(got), ["from amy", "from cal", "from bob", "cal again"]);
    // REST history agrees with what is live.
    let (_, page) = app.get(&format!("/conversations/{conv}/messages?after=0"), bob.bearer()).await;
    let texts: Vec<&str> = page["items"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(texts, ["from cal", "from bob", "cal again"], "{page}");
    let (_, page) = app.get(&format!("/conversations/{conv}/messages?after=0"), cal.bearer()).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 4);

    // A replay from the start skips amy's message for bob, and nothing else.
    let mut replay = WsClient::connect(&app.base, &bob.token).await;
    let ack = replay.request(json!({"op": "subscribe", "topic": topic, "from": "0"})).await;
    assert_eq!(ack["op"], "ok", "{ack}");
    let mut got = Vec::new();
    loop {
        let e = replay.next_event().await;
        if e["topic"] == topic.as_str() && e["event"] == "message.created" {
            got.push(e);
            if got.len() == 3 {
                break;
            }
        }
    }
    assert_eq!(bodies(got), ["from cal", "from bob", "cal again"]);
}

/// On Cloudinary (its documented delivery checked by the local double): a public post's
/// media get a stable signed URL; a DM's get a token-only URL that expires with the local
/// signed URLs' lifetime; changed signatures and tokens are refused.
async fn on_cloudinary_public_media_are_signed_and_private_media_expire(b: Backend) {
    use crate::support::cloudinary::{AUTH_TOKEN_KEY, CloudinaryDouble};
    let cdn = CloudinaryDouble::start().await;
    let app = TestApp::spawn_with(b, |c| {
        c.cloudinary_url = Some(cdn.url());
        c.cloudinary_api_base = cdn.base.clone();
        c.cloudinary_delivery_base = cdn.base.clone();
        c.cloudinary_auth_token_key = Some(AUTH_TOKEN_KEY.into());
    })
    .await;
    let (ann, ben) = (app.register("ann").await, app.register("ben").await);
    let (post, _) = post_with_image(&app, &ann, "public").await;
    let (_, p) = app.get(&format!("/posts/{post}"), None).await;
    let public = variant(&p["media"][0], "feed")["url"].as_str().unwrap().to_string();
    assert!(public.contains("/authenticated/s--") && !public.contains("__cld_token__"), "{public}");
    assert_eq!(app.http.get(&public).send().await.unwrap().status(), StatusCode::OK);
    let forged = public.replacen("/s--", "/s--x", 1);
    assert_eq!(app.http.get(&forged).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);

    let conv = dm(&app, &ann, &ben).await;
    let img = upload_ready(&app, &ann, small_jpeg()).await;
    let (s, m) =
        app.post(&format!("/conversations/{conv}/messages"), ann.bearer(), json!({"media_ids": [img["id"]]})).await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    let (_, seen) = media_status(&app, img["id"].as_str().unwrap(), Some(&ben)).await;
    let private = variant(&seen, "feed")["url"].as_str().unwrap().to_string();
    let (path, token) = private.split_once("?__cld_token__=").expect("a token");
    assert!(!path.contains("/s--"), "no signature that would outlive the token: {private}");
    let exp: u64 = token.strip_prefix("exp=").unwrap().split('~').next().unwrap().parse().unwrap();
    let now = chorus::domain::now_ms() as u64 / 1000;
    assert!((now + 3600..=now + 3600 + 300).contains(&exp), "expires with the signed-URL lifetime: {exp}");
    assert_eq!(app.http.get(&private).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.http.get(path).send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "without its token");
    let moved = format!("{path}?__cld_token__=exp={}~{}", exp + 300, token.split_once('~').unwrap().1);
    assert_eq!(app.http.get(&moved).send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "a moved expiry");
    // The same token for the thumbnail's path fails: it is bound to its URL.
    let thumb_path = path.replace("/feed.", "/thumb.");
    let reused = format!("{thumb_path}?__cld_token__={token}");
    assert_eq!(app.http.get(&reused).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}
