//! Comments: nesting to any depth, reply counts, pagination, edit/delete rights,
//! tombstones, bad input, events.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::posts::{expect_event, ids, new_post};
use crate::support::{Backend, TestApp, TestUser};

both_backends!(
    comments_nest_to_any_depth_with_reply_counts,
    bad_comments_are_refused_with_documented_errors,
    authors_edit_and_the_post_author_moderates,
    a_deleted_comment_with_replies_becomes_a_tombstone,
);

async fn comment(app: &TestApp, u: &TestUser, post: &str, body: &str, parent: Option<&str>) -> Value {
    let mut req = json!({"body": body});
    if let Some(p) = parent {
        req["parent_id"] = json!(p);
    }
    let (s, c) = app.post(&format!("/posts/{post}/comments"), u.bearer(), req).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    c
}

async fn comments_nest_to_any_depth_with_reply_counts(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let post = new_post(&app, &ann, "discuss").await;
    let mut tap = app.state.hub.tap();

    let top = comment(&app, &bob, &post, "top @ann", None).await;
    assert_eq!(top["parent_id"], Value::Null);
    assert_eq!(top["author"]["username"], "bob");
    assert_eq!(top["mentions"][0]["username"], "ann");
    let (_, ev) = expect_event(&mut tap, &format!("post:{post}"), "comment.created").await;
    assert_eq!(ev["id"], top["id"]);
    let top_id = top["id"].as_str().unwrap();
    let r1 = comment(&app, &ann, &post, "reply", Some(top_id)).await;
    let r1_id = r1["id"].as_str().unwrap();
    let deep = comment(&app, &bob, &post, "deeper", Some(r1_id)).await;
    let deeper = comment(&app, &ann, &post, "deepest", Some(deep["id"].as_str().unwrap())).await;
    assert_eq!(deeper["parent_id"], deep["id"]);
    for i in 0..4 {
        comment(&app, &ann, &post, &format!("top {i}"), None).await;
    }

    let (s, page) = app.get(&format!("/posts/{post}/comments?limit=3"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["items"][0]["id"], top["id"], "oldest first");
    assert_eq!(page["items"][0]["reply_count"], 1);
    let mut all = ids(&page);
    let mut cursor = page["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        assert!(all.len() < 100, "the cursor does not advance");
        let (_, p) = app.get(&format!("/posts/{post}/comments?limit=3&cursor={c}"), None).await;
        all.extend(ids(&p));
        cursor = p["next_cursor"].as_str().map(str::to_string);
    }
    assert_eq!(all.len(), 5, "top-level only");

    let (_, replies) = app.get(&format!("/comments/{top_id}/replies"), None).await;
    assert_eq!(ids(&replies), vec![r1_id.to_string()]);
    assert_eq!(replies["items"][0]["reply_count"], 1);
    let (_, replies) = app.get(&format!("/comments/{r1_id}/replies"), None).await;
    assert_eq!(ids(&replies), vec![deep["id"].as_str().unwrap().to_string()]);
    let (_, p) = app.get(&format!("/posts/{post}"), None).await;
    assert_eq!(p["comment_count"], 8);
    assert_eq!(app.get("/comments/999999/replies", None).await.0, StatusCode::NOT_FOUND);
}

async fn bad_comments_are_refused_with_documented_errors(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let p1 = new_post(&app, &ann, "one").await;
    let p2 = new_post(&app, &ann, "two").await;
    let c1 = comment(&app, &ann, &p1, "on one", None).await;
    let path = format!("/posts/{p2}/comments");

    let (s, e) = app.post(&path, ann.bearer(), json!({"body": "x", "parent_id": c1["id"]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a reply to a comment of another post");
    assert!(e["error"]["fields"]["parent_id"].is_string(), "{e}");
    let (s, _) = app.post(&path, ann.bearer(), json!({"body": "x", "parent_id": "424242"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "an unknown parent");
    let (s, e) = app.post(&path, ann.bearer(), json!({"body": "  "})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(e["error"]["fields"]["body"].is_string());
    let (s, _) = app.post(&path, ann.bearer(), json!({"body": "x".repeat(2201)})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app.post(&path, ann.bearer(), json!({"text": "x"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app.post(&path, None, json!({"body": "x"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app.post("/posts/999999/comments", ann.bearer(), json!({"body": "x"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

async fn authors_edit_and_the_post_author_moderates(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let cat = app.register("cat").await;
    let post = new_post(&app, &ann, "mine").await;
    let c = comment(&app, &bob, &post, "bob says", None).await;
    let path = format!("/comments/{}", c["id"].as_str().unwrap());
    let mut tap = app.state.hub.tap();

    let (s, _) = app.call(Method::PATCH, &path, ann.bearer(), Some(json!({"body": "edited by ann"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only the author edits, even the post's author cannot");
    let (s, e) = app.call(Method::PATCH, &path, bob.bearer(), Some(json!({"body": "bob says, edited"}))).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["body"], "bob says, edited");
    let (_, ev) = expect_event(&mut tap, &format!("post:{post}"), "comment.updated").await;
    assert_eq!(ev["body"], "bob says, edited");

    assert_eq!(app.call(Method::DELETE, &path, cat.bearer(), None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        app.call(Method::DELETE, &path, ann.bearer(), None).await.0,
        StatusCode::NO_CONTENT,
        "the post's author"
    );
    let (_, ev) = expect_event(&mut tap, &format!("post:{post}"), "comment.deleted").await;
    assert_eq!(ev, json!({"id": c["id"], "post_id": post, "tombstone": false}));
    assert_eq!(app.call(Method::DELETE, &path, bob.bearer(), None).await.0, StatusCode::NOT_FOUND);
    let (s, _) = app.call(Method::PATCH, &path, bob.bearer(), Some(json!({"body": "again"}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let own = comment(&app, &cat, &post, "cat's own", None).await;
    let own_path = format!("/comments/{}", own["id"].as_str().unwrap());
    assert_eq!(app.call(Method::DELETE, &own_path, cat.bearer(), None).await.0, StatusCode::NO_CONTENT);
    let (_, p) = app.get(&format!("/posts/{post}"), None).await;
    assert_eq!(p["comment_count"], 0);
}

async fn a_deleted_comment_with_replies_becomes_a_tombstone(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let post = new_post(&app, &ann, "thread").await;
    let parent = comment(&app, &bob, &post, "parent", None).await;
    let pid = parent["id"].as_str().unwrap();
    let reply = comment(&app, &ann, &post, "child", Some(pid)).await;
    app.call(Method::PUT, &format!("/comments/{pid}/reaction"), ann.bearer(), Some(json!({"type": "like"}))).await;

    let mut tap = app.state.hub.tap();
    assert_eq!(
        app.call(Method::DELETE, &format!("/comments/{pid}"), bob.bearer(), None).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, ev) = expect_event(&mut tap, &format!("post:{post}"), "comment.deleted").await;
    assert_eq!(ev["tombstone"], true);
    let (_, page) = app.get(&format!("/posts/{post}/comments"), None).await;
    let t = &page["items"][0];
    assert_eq!(t["id"], pid);
    assert_eq!(t["deleted"], true);
    assert_eq!(t["body"], Value::Null, "the body is hidden");
    assert_eq!(t["author"], Value::Null);
    assert_eq!(t["reply_count"], 1);
    let (_, replies) = app.get(&format!("/comments/{pid}/replies"), None).await;
    assert_eq!(replies["items"][0]["body"], "child", "the thread stays readable");
    let (_, p) = app.get(&format!("/posts/{post}"), None).await;
    assert_eq!(p["comment_count"], 1, "a tombstone is not counted");

    let (s, _) =
        app.call(Method::PUT, &format!("/comments/{pid}/reaction"), ann.bearer(), Some(json!({"type": "like"}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no reacting to a tombstone");
    let (s, _) =
        app.post(&format!("/posts/{post}/comments"), ann.bearer(), json!({"body": "x", "parent_id": pid})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no replying to a tombstone");

    // The last reply goes: the tombstone has nothing left to hold up and goes too.
    let rid = reply["id"].as_str().unwrap();
    assert_eq!(
        app.call(Method::DELETE, &format!("/comments/{rid}"), ann.bearer(), None).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, page) = app.get(&format!("/posts/{post}/comments"), None).await;
    assert!(ids(&page).is_empty(), "{page}");
    let (_, p) = app.get(&format!("/posts/{post}"), None).await;
    assert_eq!(p["comment_count"], 0);
}
