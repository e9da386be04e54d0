//! Posts: representation, hashtags and mentions, caption rules, edit/delete by the author,
//! `GET /posts?has=`, profile posts, saves, events, and the seed. Also the helpers the other
//! social test modules share.

use std::time::Duration;

use chorus::events::Envelope;
use chorus::store::users::{self as user_store, NewUser};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::both_backends;
use crate::support::{Backend, TestApp, TestUser, eventually};

both_backends!(
    posts_carry_author_hashtags_mentions_and_counts,
    caption_rules_are_enforced,
    only_the_author_edits_and_deletes,
    post_list_is_newest_first_and_filters_by_media,
    saves_are_private_and_paginated,
    profile_posts_paginate_newest_first,
    seed_is_idempotent,
);

// ---- helpers shared by the social test modules ----

/// Creates a caption-only post; returns its id.
pub(crate) async fn new_post(app: &TestApp, u: &TestUser, caption: &str) -> String {
    let (s, p) = app.post("/posts", u.bearer(), json!({"caption": caption})).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    p["id"].as_str().unwrap().to_string()
}

/// The ids of a page's items.
pub(crate) fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// The user ids of a follow list page.
pub(crate) fn user_ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|i| i["user"]["id"].as_str().unwrap().to_string()).collect()
}

/// `a` follows `b`; returns the follow status.
pub(crate) async fn follow(app: &TestApp, a: &TestUser, b: &TestUser) -> String {
    let (s, r) = app.post(&format!("/users/{}/follow", b.id), a.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    r["status"].as_str().unwrap().to_string()
}

/// Makes an account private.
pub(crate) async fn make_private(app: &TestApp, u: &TestUser) {
    let (s, _) = app.call(Method::PATCH, "/users/me", u.bearer(), Some(json!({"is_private": true}))).await;
    assert_eq!(s, StatusCode::OK);
}

/// Creates `n` accounts straight in the store with access tokens and sessions (no password
/// hashing: fast enough for a hundred concurrent reactors).
pub(crate) async fn quick_users(app: &TestApp, prefix: &str, n: usize) -> Vec<TestUser> {
    let mut tx = app.state.store.begin().await.unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        let id = app.state.ids.next();
        let username = format!("{prefix}{i}");
        let email = format!("{username}@example.com");
        let now = chorus::domain::Timestamp::now();
        let new = NewUser { id, username: &username, email: &email, password_hash: "x", display_name: &username, now };
        user_store::insert(tx.ex(), &new).await.unwrap();
        // A session of its own, as a login opens: what ending every session (a suspension)
        // finds and revokes.
        let sid = app.state.ids.next();
        chorus::store::sessions::insert(tx.ex(), sid, id, "quick", "127.0.0.1", now).await.unwrap();
        let (token, _) = app.state.auth.issue_access(id, sid).unwrap();
        out.push(TestUser { id: id.to_string(), username, token, refresh: String::new() });
    }
    tx.commit().await.unwrap();
    out
}

/// Waits for an event on `topic` (a key such as `post:42`) named `event`; returns its seq and
/// data.
pub(crate) async fn expect_event(
    tap: &mut broadcast::Receiver<Envelope>,
    topic: &str,
    event: &str,
) -> (Option<i64>, Value) {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tap.recv().await {
                Ok(env) if &*env.topic == topic && env.event.as_str() == event => {
                    return (env.seq, serde_json::from_str::<Value>(&env.data).unwrap());
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("hub tap closed"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {event} on {topic} within 10 s"))
}

/// Waits until no job of `kind` is queued or running.
pub(crate) async fn jobs_drained(app: &TestApp) {
    eventually(Duration::from_secs(15), || async {
        let mut c = app.state.store.conn().await.unwrap();
        let depth = chorus::store::jobs::depth(c.ex()).await.unwrap();
        let busy = depth.iter().any(|(_, status, n)| status != "dead" && *n > 0);
        (!busy).then_some(())
    })
    .await;
}

// ---- tests ----

async fn posts_carry_author_hashtags_mentions_and_counts(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let mut tap = app.state.hub.tap();
    let (s, p) = app
        .post("/posts", ann.bearer(), json!({"caption": "Sunset at the #Beach with @Bob and @nobody_here #beach #Été"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert_eq!(p["author"]["username"], "ann");
    assert_eq!(p["hashtags"], json!(["beach", "été"]), "lower-case, deduplicated");
    let mentions: Vec<&str> =
        p["mentions"].as_array().unwrap().iter().map(|m| m["username"].as_str().unwrap()).collect();
    assert_eq!(mentions, vec!["bob"], "existing users only");
    assert_eq!(p["media"], json!([]));
    assert_eq!(p["reaction_counts"], json!({}));
    assert_eq!(p["my_reaction"], Value::Null);
    assert_eq!(p["comment_count"], 0);
    assert_eq!(p["saved"], false);
    assert!(p["created_at"].as_str().unwrap().ends_with('Z'));
    let id = p["id"].as_str().unwrap();

    let (_, data) = expect_event(&mut tap, &format!("user:{}", ann.id), "post.created").await;
    assert_eq!(data["id"], id);
    assert_eq!(data["my_reaction"], Value::Null);

    let (s, got) = app.get(&format!("/posts/{id}"), bob.bearer()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["caption"], p["caption"]);
    app.call(Method::PUT, &format!("/posts/{id}/reaction"), bob.bearer(), Some(json!({"type": "love"}))).await;
    app.post(&format!("/posts/{id}/comments"), bob.bearer(), json!({"body": "nice"})).await;
    let (_, got) = app.get(&format!("/posts/{id}"), bob.bearer()).await;
    assert_eq!(got["reaction_counts"], json!({"love": 1}));
    assert_eq!(got["my_reaction"], "love");
    assert_eq!(got["comment_count"], 1);
    let (_, anon) = app.get(&format!("/posts/{id}"), None).await;
    assert_eq!(anon["my_reaction"], Value::Null);
    let (_, prof) = app.get(&format!("/users/{}", ann.id), None).await;
    assert_eq!(prof["post_count"], 1);

    for missing in ["/posts/123456789", "/posts/abc"] {
        assert_eq!(app.get(missing, None).await.0, StatusCode::NOT_FOUND);
    }
}

async fn caption_rules_are_enforced(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let cases = [
        (json!({}), "caption"),
        (json!({"caption": "   "}), "caption"),
        (json!({"caption": "x".repeat(2201)}), "caption"),
        (json!({"caption": "ok", "media_ids": (0..11).map(|i| i.to_string()).collect::<Vec<_>>()}), "media_ids"),
        (json!({"caption": "ok", "media_ids": ["123"]}), "media_ids"),
    ];
    for (body, field) in cases {
        let (s, e) = app.post("/posts", ann.bearer(), body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {e}");
        assert!(e["error"]["fields"][field].is_string(), "{body}: {e}");
    }
    let (s, _) = app.post("/posts", ann.bearer(), json!({"caption": "x".repeat(2200)})).await;
    assert_eq!(s, StatusCode::CREATED, "2,200 characters are fine");
    let (s, _) = app.post("/posts", ann.bearer(), json!({"caption": "hi", "extra": 1})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown fields are refused");
    let (s, _) = app.post("/posts", None, json!({"caption": "hi"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

async fn only_the_author_edits_and_deletes(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let id = new_post(&app, &ann, "first #draft").await;
    let path = format!("/posts/{id}");
    let mut tap = app.state.hub.tap();

    let (s, _) = app.call(Method::PATCH, &path, bob.bearer(), Some(json!({"caption": "hacked"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, e) = app.call(Method::PATCH, &path, ann.bearer(), Some(json!({"caption": ""}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (s, p) = app.call(Method::PATCH, &path, ann.bearer(), Some(json!({"caption": "final #Done @bob"}))).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["hashtags"], json!(["done"]));
    assert_eq!(p["mentions"][0]["username"], "bob");
    let (_, data) = expect_event(&mut tap, &format!("post:{id}"), "post.updated").await;
    assert_eq!(data["caption"], "final #Done @bob");
    let (_, tagged) = app.get("/tags/draft/posts", None).await;
    assert!(ids(&tagged).is_empty(), "old hashtags are gone");
    let (_, tagged) = app.get("/tags/DONE/posts", None).await;
    assert_eq!(ids(&tagged), vec![id.clone()]);

    assert_eq!(app.call(Method::DELETE, &path, bob.bearer(), None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.call(Method::DELETE, &path, ann.bearer(), None).await.0, StatusCode::NO_CONTENT);
    let (_, data) = expect_event(&mut tap, &format!("post:{id}"), "post.deleted").await;
    assert_eq!(data, json!({"id": id}));
    assert_eq!(app.get(&path, ann.bearer()).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.call(Method::DELETE, &path, ann.bearer(), None).await.0, StatusCode::NOT_FOUND);
    let (s, _) = app.call(Method::PATCH, &path, ann.bearer(), Some(json!({"caption": "again"}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "acting on a deleted post");
    let (s, _) = app.call(Method::PUT, &format!("{path}/reaction"), bob.bearer(), Some(json!({"type": "like"}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.post(&format!("{path}/comments"), bob.bearer(), json!({"body": "hello?"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, prof) = app.get(&format!("/users/{}", ann.id), None).await;
    assert_eq!(prof["post_count"], 0);
}

async fn post_list_is_newest_first_and_filters_by_media(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let priv_ = app.register("hidden").await;
    make_private(&app, &priv_).await;
    let mut mine = Vec::new();
    for i in 0..5 {
        mine.push(new_post(&app, &ann, &format!("post {i}")).await);
    }
    let secret = new_post(&app, &priv_, "secret").await;
    mine.reverse();

    let (s, page) = app.get("/posts?limit=3", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&page), mine[..3].to_vec(), "newest first; the private account's post is not listed");
    let c = page["next_cursor"].as_str().unwrap();
    let (_, page2) = app.get(&format!("/posts?limit=3&cursor={c}"), None).await;
    assert_eq!(ids(&page2), mine[3..].to_vec());
    assert!(page2["next_cursor"].is_null());

    let (_, own) = app.get("/posts", priv_.bearer()).await;
    assert_eq!(ids(&own)[0], secret, "the owner sees their private post");
    let (_, images) = app.get("/posts?has=image", None).await;
    assert!(ids(&images).is_empty(), "caption-only posts have no image");
    let (_, videos) = app.get("/posts?has=video", None).await;
    assert!(ids(&videos).is_empty());
    assert_eq!(app.get("/posts?has=audio", None).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.get("/posts?cursor=garbage", None).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.get("/posts?limit=101", None).await.0, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn saves_are_private_and_paginated(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let mut posts = Vec::new();
    for i in 0..4 {
        posts.push(new_post(&app, &bob, &format!("bob {i}")).await);
    }
    for p in &posts {
        assert_eq!(app.post(&format!("/posts/{p}/save"), ann.bearer(), json!({})).await.0, StatusCode::NO_CONTENT);
    }
    assert_eq!(app.post(&format!("/posts/{}/save", posts[0]), ann.bearer(), json!({})).await.0, StatusCode::NO_CONTENT);
    let (_, p) = app.get(&format!("/posts/{}", posts[1]), ann.bearer()).await;
    assert_eq!(p["saved"], true);
    let (_, p) = app.get(&format!("/posts/{}", posts[1]), bob.bearer()).await;
    assert_eq!(p["saved"], false, "saves are per viewer");

    let (s, page) = app.get("/users/me/saved?limit=3", ann.bearer()).await;
    assert_eq!(s, StatusCode::OK);
    let mut got = ids(&page);
    let c = page["next_cursor"].as_str().unwrap();
    let (_, page2) = app.get(&format!("/users/me/saved?limit=3&cursor={c}"), ann.bearer()).await;
    got.extend(ids(&page2));
    let mut expected = posts.clone();
    expected.reverse();
    assert_eq!(got, expected, "newest save first");

    let (s, _) = app.call(Method::DELETE, &format!("/posts/{}/save", posts[3]), ann.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, page) = app.get("/users/me/saved", ann.bearer()).await;
    assert_eq!(ids(&page).len(), 3);
    assert_eq!(app.get("/users/me/saved", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.post("/posts/999999/save", ann.bearer(), json!({})).await.0, StatusCode::NOT_FOUND);

    // A saved post of an account that blocks the saver disappears from the list.
    app.post(&format!("/users/{}/block", ann.id), bob.bearer(), json!({})).await;
    let (_, page) = app.get("/users/me/saved", ann.bearer()).await;
    assert!(ids(&page).is_empty(), "{page}");
}

async fn profile_posts_paginate_newest_first(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let mut posts = Vec::new();
    for i in 0..5 {
        posts.push(new_post(&app, &ann, &format!("p{i}")).await);
    }
    posts.reverse();
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    for round in 0.. {
        assert!(round < 100, "the cursor does not advance");
        let path = match &cursor {
            Some(c) => format!("/users/@ann/posts?limit=2&cursor={c}"),
            None => "/users/@ann/posts?limit=2".to_string(),
        };
        let (s, page) = app.get(&path, None).await;
        assert_eq!(s, StatusCode::OK);
        got.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(got, posts);
    assert_eq!(app.get("/users/@nobody/posts", None).await.0, StatusCode::NOT_FOUND);
}

async fn seed_is_idempotent(b: Backend) {
    let app = TestApp::spawn(b).await;
    let counts = || async {
        let mut c = app.state.store.conn().await.unwrap();
        chorus::seed::counts(&mut c).await.unwrap()
    };
    let looks = || async {
        let mut c = app.state.store.conn().await.unwrap();
        let mut n = Vec::new();
        for sql in [
            "SELECT COUNT(*) FROM media WHERE status = 'ready'",
            "SELECT COUNT(*) FROM users WHERE avatar_media_id IS NOT NULL",
            "SELECT COUNT(*) FROM messages",
        ] {
            let v: i64 = chorus::run!(c.ex(), c => sqlx::query_scalar(sql).fetch_one(c).await).unwrap();
            n.push(v);
        }
        (n[0], n[1], n[2])
    };
    chorus::seed::run(app.config.clone(), 12).await.unwrap();
    let first = counts().await;
    let pictured = looks().await;
    assert_eq!(first.users, 12);
    assert!(first.follows > 12, "{first:?}");
    assert!(first.posts >= 12, "{first:?}");
    // Every account has an avatar, every post a picture, every neighbour pair a conversation.
    assert_eq!(pictured, (12 + first.posts, 12, 11 * 5), "(ready media, avatars, messages)");
    assert!(first.comments > 0 && first.replies > 0, "{first:?}");
    assert!(first.reactions > 0 && first.hashtags > 0, "{first:?}");
    chorus::seed::run(app.config.clone(), 12).await.unwrap();
    assert_eq!(counts().await, first, "a second run changes nothing");
    assert_eq!(looks().await, pictured, "a second run adds no media or messages");

    // Seeded data is consistent with the counters the API shows.
    let (_, page) = app.get("/users/@user0002/posts", None).await;
    let post = &page["items"][0];
    assert_eq!(post["media"][0]["status"], "ready", "{post}");
    let avatar = post["author"]["avatar_url"].as_str().expect("seeded avatar");
    // The avatar URL needs no credentials: a redirect to the public thumbnail.
    let resp = app.http.get(format!("{}{avatar}", app.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    let (_, comments) = app.get(&format!("/posts/{}/comments?limit=100", post["id"].as_str().unwrap()), None).await;
    let top = comments["items"].as_array().unwrap().len() as i64;
    let replies: i64 = comments["items"].as_array().unwrap().iter().map(|c| c["reply_count"].as_i64().unwrap()).sum();
    assert_eq!(post["comment_count"].as_i64().unwrap(), top + replies, "{post}");
}
