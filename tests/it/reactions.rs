//! Reactions: data-driven types, set/switch/remove on posts and comments, reactor lists,
//! exact counts under 100 concurrent reactors, and the `chorus reactions` CLI.

use std::collections::BTreeMap;

use chorus::domain::Id;
use chorus::store::reactions::{self as reaction_store, Target};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::posts::{expect_event, new_post, quick_users};
use crate::support::{Backend, TestApp};

both_backends!(
    reaction_types_are_listed_in_position_order,
    reacting_sets_switches_and_removes_one_reaction_per_user,
    comments_take_reactions_too,
    hundred_concurrent_reactors_keep_exact_counts,
    cli_adds_and_disables_types_without_a_release,
);

async fn reaction_types_are_listed_in_position_order(b: Backend) {
    let app = TestApp::spawn(b).await;
    let (s, types) = app.get("/reaction-types", None).await;
    assert_eq!(s, StatusCode::OK);
    let keys: Vec<&str> = types.as_array().unwrap().iter().map(|t| t["key"].as_str().unwrap()).collect();
    assert_eq!(keys, vec!["like", "love", "support", "celebrate", "insightful", "funny"]);
    assert_eq!(types[1]["emoji"], "❤️");
    assert_eq!(types[1]["label"], "Love");
}

async fn reacting_sets_switches_and_removes_one_reaction_per_user(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    // cat before bob: reactions list newest first with ties (one millisecond) broken by the
    // larger user id, so bob's switch right after cat's reaction lists first either way.
    let cat = app.register("cat").await;
    let bob = app.register("bob").await;
    let id = new_post(&app, &ann, "react to me").await;
    let path = format!("/posts/{id}/reaction");
    let mut tap = app.state.hub.tap();

    let (s, r) = app.call(Method::PUT, &path, bob.bearer(), Some(json!({"type": "love"}))).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r, json!({"reaction_counts": {"love": 1}, "my_reaction": "love"}));
    let (_, ev) = expect_event(&mut tap, &format!("post:{id}"), "reaction.changed").await;
    assert_eq!(ev, json!({"target_kind": "post", "target_id": id, "post_id": id, "reaction_counts": {"love": 1}}));

    let (_, r) = app.call(Method::PUT, &path, bob.bearer(), Some(json!({"type": "love"}))).await;
    assert_eq!(r["reaction_counts"], json!({"love": 1}), "setting the same type again changes nothing");
    let (_, r) = app.call(Method::PUT, &path, cat.bearer(), Some(json!({"type": "love"}))).await;
    assert_eq!(r["reaction_counts"], json!({"love": 2}));
    let (_, r) = app.call(Method::PUT, &path, bob.bearer(), Some(json!({"type": "Celebrate"}))).await;
    assert_eq!(r, json!({"reaction_counts": {"love": 1, "celebrate": 1}, "my_reaction": "celebrate"}), "switch");

    let (_, page) = app.get(&format!("/posts/{id}/reactions"), None).await;
    let who: Vec<(&str, &str)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["user"]["username"].as_str().unwrap(), r["type"].as_str().unwrap()))
        .collect();
    assert_eq!(who, vec![("bob", "celebrate"), ("cat", "love")], "newest first");
    let (_, page) = app.get(&format!("/posts/{id}/reactions?type=love"), None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["user"]["username"], "cat");
    let (_, page) = app.get(&format!("/posts/{id}/reactions?limit=1"), None).await;
    let c = page["next_cursor"].as_str().unwrap();
    let (_, page2) = app.get(&format!("/posts/{id}/reactions?limit=1&cursor={c}"), None).await;
    assert_eq!(page2["items"][0]["user"]["username"], "cat");
    assert!(page2["next_cursor"].is_null());
    assert_eq!(app.get(&format!("/posts/{id}/reactions?type=meh"), None).await.0, StatusCode::UNPROCESSABLE_ENTITY);

    let (s, e) = app.call(Method::PUT, &path, bob.bearer(), Some(json!({"type": "meh"}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(e["error"]["fields"]["type"].is_string());
    assert_eq!(app.call(Method::PUT, &path, bob.bearer(), Some(json!({}))).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.call(Method::PUT, &path, None, Some(json!({"type": "like"}))).await.0, StatusCode::UNAUTHORIZED);
    let (s, _) = app.call(Method::PUT, "/posts/999999/reaction", bob.bearer(), Some(json!({"type": "like"}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, r) = app.call(Method::DELETE, &path, bob.bearer(), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r, json!({"reaction_counts": {"love": 1}, "my_reaction": null}));
    let (_, r) = app.call(Method::DELETE, &path, bob.bearer(), None).await;
    assert_eq!(r["reaction_counts"], json!({"love": 1}), "removing twice is harmless");
}

async fn comments_take_reactions_too(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let post = new_post(&app, &ann, "post").await;
    let (_, c) = app.post(&format!("/posts/{post}/comments"), ann.bearer(), json!({"body": "first"})).await;
    let cid = c["id"].as_str().unwrap();
    let mut tap = app.state.hub.tap();
    let (s, r) =
        app.call(Method::PUT, &format!("/comments/{cid}/reaction"), bob.bearer(), Some(json!({"type": "funny"}))).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["reaction_counts"], json!({"funny": 1}));
    let (_, ev) = expect_event(&mut tap, &format!("post:{post}"), "reaction.changed").await;
    assert_eq!(ev["target_kind"], "comment");
    assert_eq!(ev["target_id"], cid);
    let (_, list) = app.get(&format!("/posts/{post}/comments"), bob.bearer()).await;
    assert_eq!(list["items"][0]["reaction_counts"], json!({"funny": 1}));
    assert_eq!(list["items"][0]["my_reaction"], "funny");
    let (_, reactors) = app.get(&format!("/comments/{cid}/reactions"), None).await;
    assert_eq!(reactors["items"][0]["user"]["username"], "bob");
    let (_, post_view) = app.get(&format!("/posts/{post}"), None).await;
    assert_eq!(post_view["reaction_counts"], json!({}), "comment reactions are not the post's");
    let (_, r) = app.call(Method::DELETE, &format!("/comments/{cid}/reaction"), bob.bearer(), None).await;
    assert_eq!(r["reaction_counts"], json!({}));
}

/// 100 users react at once, half of them switching type right after, some removing, and one
/// more user switching ten times concurrently: the counts equal what the final reactions
/// say, on both backends.
async fn hundred_concurrent_reactors_keep_exact_counts(b: Backend) {
    let app = TestApp::spawn(b).await;
    let author = app.register("author").await;
    let post = new_post(&app, &author, "go viral").await;
    let users = quick_users(&app, "fan", 100).await;
    let kinds = ["like", "love", "support", "celebrate", "insightful", "funny"];

    let mut tasks = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let (http, base, token, post) = (app.http.clone(), app.api(""), u.token.clone(), post.clone());
        tasks.push(tokio::spawn(async move {
            let url = format!("{base}/posts/{post}/reaction");
            let put = |kind: &'static str| http.put(&url).bearer_auth(&token).json(&json!({"type": kind})).send();
            let first = kinds[i % kinds.len()];
            let r = put(first).await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            // Half switch, a tenth then remove: the final state per user is known.
            let mut last = Some(first);
            if i % 2 == 0 {
                let second = kinds[(i / 2 + 1) % kinds.len()];
                assert_eq!(put(second).await.unwrap().status(), StatusCode::OK);
                last = Some(second);
            }
            if i % 10 == 3 {
                let r = http.delete(&url).bearer_auth(&token).send().await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                last = None;
            }
            last
        }));
    }
    // And one restless user switching ten times at once: still one reaction.
    let restless = quick_users(&app, "restless", 1).await.remove(0);
    let mut racing = Vec::new();
    for i in 0..10 {
        let req = app
            .http
            .put(app.api(&format!("/posts/{post}/reaction")))
            .bearer_auth(&restless.token)
            .json(&json!({"type": kinds[i % kinds.len()]}));
        racing.push(tokio::spawn(async move { req.send().await.unwrap().status() }));
    }
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for t in tasks {
        if let Some(kind) = t.await.unwrap() {
            *expected.entry(kind.to_string()).or_default() += 1;
        }
    }
    for r in racing {
        assert_eq!(r.await.unwrap(), StatusCode::OK);
    }
    let mut c = app.state.store.conn().await.unwrap();
    let pid: Id = post.parse().unwrap();
    let mine = reaction_store::mine_of(c.ex(), Target::Post, &[pid], restless.id.parse().unwrap()).await.unwrap();
    drop(c);
    assert_eq!(mine.len(), 1);
    *expected.entry(mine[0].1.clone()).or_default() += 1;
    let total: i64 = expected.values().sum();
    assert_eq!(total, 91);

    let (_, view) = app.get(&format!("/posts/{post}"), None).await;
    let got: BTreeMap<String, i64> = serde_json::from_value(view["reaction_counts"].clone()).unwrap();
    assert_eq!(got, expected);
    let mut c = app.state.store.conn().await.unwrap();
    let (counted, rows) = reaction_store::totals(c.ex(), Target::Post, pid).await.unwrap();
    assert_eq!((counted, rows), (total, total), "count rows agree with reaction rows");
    let row = chorus::store::posts::get(c.ex(), pid).await.unwrap().unwrap();
    assert_eq!(row.reaction_count, total, "the post's total agrees too");
}

/// `chorus reactions add|disable|list` (the real binary) changes the set without a release:
/// a disabled type can no longer be chosen but stays counted.
async fn cli_adds_and_disables_types_without_a_release(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let post = new_post(&app, &ann, "cli").await;
    let command = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chorus"));
        cmd.env("CHORUS_DATA_DIR", app.dir.path()).env("CHORUS_LOG", "warn").env_remove("REDIS_URL");
        match &app.config.database_url {
            Some(url) => cmd.env("DATABASE_URL", url),
            None => cmd.env_remove("DATABASE_URL"),
        };
        cmd.arg("reactions").args(args).output().unwrap()
    };
    let cli = |args: &[&str]| {
        let out = command(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };

    cli(&["add", "wow", "😮", "Wow"]);
    let (_, types) = app.get("/reaction-types", None).await;
    let last = types.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["key"], "wow");
    assert_eq!(last["position"], 7, "appended after the seeded six");
    cli(&["add", "first", "🥇", "First", "--position", "0"]);
    let (_, types) = app.get("/reaction-types", None).await;
    assert_eq!(types[0]["key"], "first");

    let path = format!("/posts/{post}/reaction");
    let (s, r) = app.call(Method::PUT, &path, ann.bearer(), Some(json!({"type": "wow"}))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["reaction_counts"], json!({"wow": 1}));

    cli(&["disable", "wow"]);
    let list = cli(&["list"]);
    assert!(list.lines().any(|l| l.contains("wow") && l.contains("disabled")), "{list}");
    let (_, types) = app.get("/reaction-types", None).await;
    assert!(types.as_array().unwrap().iter().all(|t| t["key"] != "wow"));
    let other = app.register("other").await;
    let (s, e) = app.call(Method::PUT, &path, other.bearer(), Some(json!({"type": "wow"}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (_, view) = app.get(&format!("/posts/{post}"), None).await;
    assert_eq!(view["reaction_counts"], json!({"wow": 1}), "existing reactions stay counted");

    assert!(!command(&["disable", "nope"]).status.success(), "an unknown key fails");
    assert!(!command(&["add", "Bad Key", "x", "y"]).status.success(), "keys are validated");
}
