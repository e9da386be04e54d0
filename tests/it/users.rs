//! Profiles, settings, lists, search.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, TestApp};

both_backends!(
    profiles_by_id_and_by_username,
    profile_update_changes_only_given_fields,
    profile_update_validates_fields,
    settings_are_typed_and_partial,
    user_list_pages_without_gaps_or_duplicates_while_users_join,
    search_matches_username_and_display_name_prefixes,
    suggestions_exclude_me,
);

async fn profiles_by_id_and_by_username(b: Backend) {
    let app = TestApp::spawn(b).await;
    let joe = app.register("joe").await;
    let (s, by_id) = app.get(&format!("/users/{}", joe.id), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, by_name) = app.get("/users/@JOE", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(by_id, by_name);
    assert_eq!(by_id["username"], "joe");
    assert_eq!(by_id["follower_count"], 0);
    assert!(by_id.get("email").is_none(), "e-mail is private");
    for missing in ["/users/123456789", "/users/@nobody", "/users/not-an-id", "/users/-1"] {
        let (s, body) = app.get(missing, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(body["error"]["code"], "not_found");
    }
}

async fn profile_update_changes_only_given_fields(b: Backend) {
    let app = TestApp::spawn(b).await;
    let kim = app.register("kim").await;
    let patch = json!({
        "display_name": "Kim K.",
        "bio": "Hello there",
        "website": "https://kim.example.com",
        "is_private": true,
        "social_links": {"github": "https://github.com/kim", "twitter": "https://x.com/kim"}
    });
    let (s, me) = app.call(Method::PATCH, "/users/me", kim.bearer(), Some(patch)).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["display_name"], "Kim K.");
    assert_eq!(me["website"], "https://kim.example.com/");
    assert_eq!(me["is_private"], true);
    assert_eq!(me["social_links"]["github"], "https://github.com/kim");

    let (s, me) = app
        .call(
            Method::PATCH,
            "/users/me",
            kim.bearer(),
            Some(json!({"bio": "Changed", "website": null, "social_links": {"twitter": null}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["bio"], "Changed");
    assert_eq!(me["display_name"], "Kim K.", "untouched");
    assert_eq!(me["website"], serde_json::Value::Null, "null clears");
    assert!(me["social_links"].get("twitter").is_none());
    assert_eq!(me["social_links"]["github"], "https://github.com/kim");

    let (_, public) = app.get(&format!("/users/{}", kim.id), None).await;
    assert_eq!(public["bio"], "Changed");
    assert_eq!(app.call(Method::PATCH, "/users/me", None, Some(json!({"bio": "x"}))).await.0, StatusCode::UNAUTHORIZED);
}

async fn profile_update_validates_fields(b: Backend) {
    let app = TestApp::spawn(b).await;
    let lee = app.register("lee").await;
    let (s, body) = app
        .call(
            Method::PATCH,
            "/users/me",
            lee.bearer(),
            Some(json!({"display_name": "x".repeat(51), "bio": "y".repeat(301), "website": "javascript:alert(1)", "social_links": {"github": "ftp://x"}})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let f = &body["error"]["fields"];
    for field in ["display_name", "bio", "website", "social_links.github"] {
        assert!(f[field].is_string(), "{field}: {body}");
    }
    let (s, body) = app.call(Method::PATCH, "/users/me", lee.bearer(), Some(json!({"email": "x@y.io"}))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown fields are refused: {body}");
    let (s, _) = app
        .call(Method::PATCH, "/users/me", lee.bearer(), Some(json!({"social_links": {"myspace": "https://x.io"}})))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "unknown networks are refused");
}

async fn settings_are_typed_and_partial(b: Backend) {
    let app = TestApp::spawn(b).await;
    let moe = app.register("moe").await;
    let (s, st) = app
        .call(
            Method::PUT,
            "/users/me/settings",
            moe.bearer(),
            Some(json!({"notifications": {"reaction": {"email": true}, "follow": {"in_app": false}}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{st}");
    assert_eq!(st["notifications"]["reaction"], json!({"in_app": true, "email": true, "push": true}));
    assert_eq!(st["notifications"]["follow"], json!({"in_app": false, "email": false, "push": true}));
    assert_eq!(
        st["notifications"]["message"],
        json!({"in_app": true, "email": true, "push": true}),
        "defaults for untouched kinds"
    );
    assert_eq!(st["push_previews"], true);
    let (_, me) = app.get("/auth/me", moe.bearer()).await;
    assert_eq!(me["settings"], st);
    let (s, _) = app
        .call(
            Method::PUT,
            "/users/me/settings",
            moe.bearer(),
            Some(json!({"notifications": {"spam": {"email": true}}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app
        .call(
            Method::PUT,
            "/users/me/settings",
            moe.bearer(),
            Some(json!({"notifications": {"follow": {"email": "yes"}}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

async fn user_list_pages_without_gaps_or_duplicates_while_users_join(b: Backend) {
    let app = TestApp::spawn(b).await;
    for i in 0..23 {
        app.register(&format!("pager{i:02}")).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/users?limit=5&cursor={c}"),
            None => "/users?limit=5".to_string(),
        };
        let (s, page) = app.get(&path, None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for u in page["items"].as_array().unwrap() {
            seen.push(u["username"].as_str().unwrap().to_string());
        }
        pages += 1;
        if pages == 2 {
            // Users joining mid-listing land before the cursor: no duplicates, no gaps.
            app.register("latecomer1").await;
            app.register("latecomer2").await;
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    assert_eq!(seen.len(), 23, "every user present at the start is listed once: {seen:?}");
    let mut expected: Vec<String> = (0..23).rev().map(|i| format!("pager{i:02}")).collect();
    expected.truncate(23);
    assert_eq!(seen, expected, "newest first");

    let (s, body) = app.get("/users?limit=101", None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["fields"]["limit"].is_string());
    let (s, _) = app.get("/users?cursor=@@@", None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app.get("/users?limit=abc", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

async fn search_matches_username_and_display_name_prefixes(b: Backend) {
    let app = TestApp::spawn(b).await;
    let names = ["sam_a", "sam_b", "samantha", "tom", "sa.m"];
    for n in names {
        app.register(n).await;
    }
    let tom = app.register("tommy").await;
    app.call(Method::PATCH, "/users/me", tom.bearer(), Some(json!({"display_name": "Samuel Tom"}))).await;

    let (s, page) = app.get("/users/search?q=SAM", None).await;
    assert_eq!(s, StatusCode::OK);
    let got: Vec<&str> = page["items"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(got, vec!["sam_a", "sam_b", "samantha", "tommy"], "by username, display-name matches included");

    let (_, p1) = app.get("/users/search?q=sam&limit=2", None).await;
    let c = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = app.get(&format!("/users/search?q=sam&limit=2&cursor={c}"), None).await;
    let got: Vec<&str> = p1["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["items"].as_array().unwrap())
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec!["sam_a", "sam_b", "samantha", "tommy"]);
    assert!(p2["next_cursor"].is_null());

    let (_, p) = app.get("/users/search?q=@to", None).await;
    assert_eq!(p["items"].as_array().unwrap().len(), 2);
    let (s, _) = app.get("/users/search?q=", None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app.get("/users/search", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

async fn suggestions_exclude_me(b: Backend) {
    let app = TestApp::spawn(b).await;
    let me = app.register("nia").await;
    for i in 0..5 {
        app.register(&format!("other{i}")).await;
    }
    let (s, list) = app.get("/users/suggestions?limit=10", me.bearer()).await;
    assert_eq!(s, StatusCode::OK);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 5);
    assert!(list.iter().all(|u| u["id"] != me.id.as_str()));
    assert_eq!(app.get("/users/suggestions", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/users/suggestions?limit=0", me.bearer()).await.0, StatusCode::UNPROCESSABLE_ENTITY);
}
