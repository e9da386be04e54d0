//! Follows, requests, blocks, mutes, lists, counts, relationship, suggestions, events.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::posts::{expect_event, follow, make_private, new_post, user_ids};
use crate::support::{Backend, TestApp};

both_backends!(
    follow_and_unfollow_keep_counts_and_publish_events,
    private_accounts_turn_follows_into_requests,
    blocking_removes_follows_and_hides_both_sides,
    follower_lists_paginate_newest_first,
    suggestions_prefer_friends_of_friends_and_skip_relations,
);

async fn follow_and_unfollow_keep_counts_and_publish_events(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let mut tap = app.state.hub.tap();

    assert_eq!(follow(&app, &ann, &bob).await, "active");
    let (seq, ev) = expect_event(&mut tap, &format!("follower:{}", bob.id), "follower.added").await;
    assert!(seq.is_some(), "follower events are durable");
    assert_eq!(ev["user"]["username"], "ann");

    let (s, e) = app.post(&format!("/users/{}/follow", bob.id), ann.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let (s, e) = app.post(&format!("/users/{}/follow", ann.id), ann.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(app.post("/users/999999/follow", ann.bearer(), json!({})).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.post("/users/@bob/follow", None, json!({})).await.0, StatusCode::UNAUTHORIZED);

    let (_, bob_profile) = app.get("/users/@bob", ann.bearer()).await;
    assert_eq!(bob_profile["follower_count"], 1);
    assert_eq!(
        bob_profile["relationship"],
        json!({"following": true, "requested": false, "followed_by": false, "muting": false})
    );
    let (_, ann_profile) = app.get("/users/@ann", bob.bearer()).await;
    assert_eq!(ann_profile["following_count"], 1);
    assert_eq!(ann_profile["relationship"]["followed_by"], true);
    let (_, anon) = app.get("/users/@ann", None).await;
    assert!(anon.get("relationship").is_none(), "no relationship for anonymous viewers");
    let (_, followers) = app.get(&format!("/users/{}/followers", bob.id), None).await;
    assert_eq!(user_ids(&followers), vec![ann.id.clone()]);
    let (_, following) = app.get("/users/@ann/following", None).await;
    assert_eq!(user_ids(&following), vec![bob.id.clone()]);

    let (s, _) = app.call(Method::DELETE, &format!("/users/{}/follow", bob.id), ann.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, ev) = expect_event(&mut tap, &format!("follower:{}", bob.id), "follower.removed").await;
    assert_eq!(ev["user"]["id"], ann.id.as_str());
    let (s, _) = app.call(Method::DELETE, &format!("/users/{}/follow", bob.id), ann.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "unfollowing twice is harmless");
    let (_, bob_profile) = app.get("/users/@bob", None).await;
    assert_eq!(bob_profile["follower_count"], 0);
    let (_, ann_profile) = app.get("/users/@ann", None).await;
    assert_eq!(ann_profile["following_count"], 0);
}

async fn private_accounts_turn_follows_into_requests(b: Backend) {
    let app = TestApp::spawn(b).await;
    let pia = app.register("pia").await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    make_private(&app, &pia).await;
    let mut tap = app.state.hub.tap();

    assert_eq!(follow(&app, &ann, &pia).await, "pending");
    let (_, ev) = expect_event(&mut tap, &format!("follower:{}", pia.id), "follow.requested").await;
    assert_eq!(ev["user"]["username"], "ann");
    assert_eq!(follow(&app, &bob, &pia).await, "pending");
    let (s, _) = app.post(&format!("/users/{}/follow", pia.id), ann.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "a second request");
    let (_, prof) = app.get("/users/@pia", ann.bearer()).await;
    assert_eq!(prof["follower_count"], 0, "a request is not a follow");
    assert_eq!(prof["relationship"]["requested"], true);

    let (s, reqs) = app.get("/users/me/follow-requests", pia.bearer()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(user_ids(&reqs), vec![bob.id.clone(), ann.id.clone()]);
    assert_eq!(app.get(&format!("/users/{}/followers", pia.id), ann.bearer()).await.0, StatusCode::FORBIDDEN);

    let (s, _) = app.post(&format!("/users/me/follow-requests/{}/approve", ann.id), pia.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, ev) = expect_event(&mut tap, &format!("follower:{}", ann.id), "follow.approved").await;
    assert_eq!(ev["user"]["username"], "pia");
    let (s, _) = app.post(&format!("/users/me/follow-requests/{}/approve", ann.id), pia.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing left to approve");
    let (s, _) = app.call(Method::DELETE, &format!("/users/me/follow-requests/{}", bob.id), pia.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.call(Method::DELETE, &format!("/users/me/follow-requests/{}", bob.id), pia.bearer(), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (_, prof) = app.get("/users/@pia", ann.bearer()).await;
    assert_eq!(prof["follower_count"], 1);
    assert_eq!(prof["relationship"]["following"], true);
    let (s, followers) = app.get(&format!("/users/{}/followers", pia.id), ann.bearer()).await;
    assert_eq!(s, StatusCode::OK, "an active follower sees a private account's lists");
    assert_eq!(user_ids(&followers), vec![ann.id.clone()]);
    let (_, reqs) = app.get("/users/me/follow-requests", pia.bearer()).await;
    assert!(user_ids(&reqs).is_empty());
}

async fn blocking_removes_follows_and_hides_both_sides(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    follow(&app, &ann, &bob).await;
    follow(&app, &bob, &ann).await;
    let ann_post = new_post(&app, &ann, "ann's").await;
    let bob_post = new_post(&app, &bob, "bob's").await;

    let (s, _) = app.post(&format!("/users/{}/block", bob.id), ann.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    for (viewer, other, post) in [(&ann, &bob, &bob_post), (&bob, &ann, &ann_post)] {
        assert_eq!(app.get(&format!("/users/{}", other.id), viewer.bearer()).await.0, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&format!("/posts/{post}"), viewer.bearer()).await.0, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&format!("/users/{}/posts", other.id), viewer.bearer()).await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            app.post(&format!("/users/{}/follow", other.id), viewer.bearer(), json!({})).await.0,
            StatusCode::NOT_FOUND
        );
        let (s, _) = app.post(&format!("/posts/{post}/comments"), viewer.bearer(), json!({"body": "hi"})).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = app
            .call(Method::PUT, &format!("/posts/{post}/reaction"), viewer.bearer(), Some(json!({"type": "like"})))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (_, search) = app.get(&format!("/users/search?q={}", other.username), viewer.bearer()).await;
        assert!(search["items"].as_array().unwrap().is_empty(), "hidden from search");
    }
    for u in [&ann, &bob] {
        let (_, p) = app.get(&format!("/users/{}", u.id), None).await;
        assert_eq!(p["follower_count"], 0, "follows both ways are gone");
        assert_eq!(p["following_count"], 0);
    }
    let (s, _) = app.post(&format!("/users/{}/block", ann.id), ann.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "self-block");

    let (s, _) = app.call(Method::DELETE, &format!("/users/{}/block", bob.id), ann.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/users/{}", bob.id), ann.bearer()).await.0, StatusCode::OK);
    assert_eq!(app.get(&format!("/posts/{ann_post}"), bob.bearer()).await.0, StatusCode::OK);
    let (_, p) = app.get(&format!("/users/{}", bob.id), ann.bearer()).await;
    assert_eq!(p["relationship"]["following"], false, "unblocking does not restore follows");
}

async fn follower_lists_paginate_newest_first(b: Backend) {
    let app = TestApp::spawn(b).await;
    let star = app.register("star").await;
    let mut fans = Vec::new();
    for i in 0..5 {
        let f = app.register(&format!("fan{i}")).await;
        follow(&app, &f, &star).await;
        fans.push(f.id.clone());
    }
    fans.reverse();
    let mut got = Vec::new();
    let mut cursor: Option<String> = None;
    for round in 0.. {
        assert!(round < 100, "the cursor does not advance");
        let path = match &cursor {
            Some(c) => format!("/users/@star/followers?limit=2&cursor={c}"),
            None => "/users/@star/followers?limit=2".into(),
        };
        let (s, page) = app.get(&path, None).await;
        assert_eq!(s, StatusCode::OK);
        got.extend(user_ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.into()),
            None => break,
        }
    }
    assert_eq!(got, fans);
    assert_eq!(app.get("/users/@star/followers?cursor=zzz", None).await.0, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn suggestions_prefer_friends_of_friends_and_skip_relations(b: Backend) {
    let app = TestApp::spawn(b).await;
    let me = app.register("me_user").await;
    let friend = app.register("friend").await;
    let fof = app.register("fof").await;
    let blocked = app.register("blocked").await;
    for i in 0..4 {
        app.register(&format!("rand{i}")).await;
    }
    follow(&app, &me, &friend).await;
    follow(&app, &friend, &fof).await;
    follow(&app, &friend, &blocked).await;
    app.post(&format!("/users/{}/block", me.id), blocked.bearer(), json!({})).await;

    let (s, list) = app.get("/users/suggestions?limit=50", me.bearer()).await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names[0], "fof", "friends of friends first: {names:?}");
    assert_eq!(names.len(), 5, "fof and four random accounts: {names:?}");
    for excluded in ["me_user", "friend", "blocked"] {
        assert!(!names.contains(&excluded), "{excluded} suggested: {names:?}");
    }
}
