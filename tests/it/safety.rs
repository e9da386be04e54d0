//! Trust and safety: roles, reports and the moderators' queue, removal, suspension, the audit
//! log, sessions, and the per-account write limits.

use std::time::Duration;

use chorus::domain::user::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::chat::{dm, say};
use crate::media::{local_file, small_jpeg, upload_ready, variant};
use crate::posts::{follow, ids, jobs_drained, make_private, new_post, quick_users};
use crate::support::ws::{WAIT, WsClient};
use crate::support::{Backend, TestApp, TestUser, eventually, smtp};

crate::both_backends!(
    roles_come_from_the_command_line_then_from_admins,
    a_report_leads_to_removal_everywhere,
    reports_are_checked_like_reads,
    suspension_hides_the_account_and_unsuspension_restores_it,
    sessions_are_listed_and_ended_one_by_one,
    each_write_limit_answers_429_at_its_documented_rate,
    the_audit_log_is_append_only,
    messages_from_outside_who_can_message_are_requests,
    email_is_verified_with_a_code_or_a_link,
    account_deletion_erases_everything_and_keeps_counts_right,
    a_data_export_holds_everything_and_is_the_owners_only,
    a_removal_is_replayed_after_its_author_is_suspended,
);

/// Makes `u` a moderator (or admin) the way `chorus admin grant` does.
pub(crate) async fn grant(app: &TestApp, u: &TestUser, role: Role) {
    chorus::services::moderation::cli_role(&app.state.store, &u.username, role, true).await.unwrap();
}

async fn report(app: &TestApp, who: &TestUser, kind: &str, id: &str, reason: &str) -> (StatusCode, Value) {
    app.post("/reports", who.bearer(), json!({"target_type": kind, "target_id": id, "reason": reason})).await
}

/// The next `reports.open` count on a moderator's socket (notifications may come between).
async fn open_count(ws: &mut WsClient) -> i64 {
    loop {
        let e = ws.next_event().await;
        if e["event"] == "reports.open" {
            return e["data"]["count"].as_i64().unwrap();
        }
        assert_eq!(e["event"], "notification.created", "{e}");
    }
}

async fn notifications_of(app: &TestApp, who: &TestUser, kind: &str) -> Vec<Value> {
    let (_, page) = app.get("/notifications", who.bearer()).await;
    page["items"].as_array().unwrap().iter().filter(|n| n["kind"] == kind).cloned().collect()
}

async fn roles_come_from_the_command_line_then_from_admins(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let (s, _) = app.get("/admin/reports", ann.bearer()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a plain user sees no queue");

    // The real binary, on the instance's own database.
    let cli = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chorus"));
        cmd.env("CHORUS_DATA_DIR", app.dir.path()).env("CHORUS_LOG", "warn").env_remove("REDIS_URL");
        match &app.config.database_url {
            Some(url) => cmd.env("DATABASE_URL", url),
            None => cmd.env_remove("DATABASE_URL"),
        };
        cmd.arg("admin").args(args).output().unwrap()
    };
    let out = cli(&["grant", "ann", "admin"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("is now admin"));
    let out = cli(&["grant", "ann", "overlord"]);
    assert!(!out.status.success(), "an unknown role is refused");
    let out = cli(&["revoke", "bob", "moderator"]);
    assert!(!out.status.success(), "bob has no role to revoke");
    let (_, me) = app.get("/auth/me", ann.bearer()).await;
    assert_eq!(me["role"], "admin");

    // The admin grants over REST; the moderator may moderate but not grant.
    let path = format!("/admin/users/{}/role", bob.id);
    let (s, v) = app.call(Method::PUT, &path, ann.bearer(), Some(json!({"role": "moderator"}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["role"], "moderator");
    let (s, _) = app.get("/admin/reports", bob.bearer()).await;
    assert_eq!(s, StatusCode::OK);
    let path = format!("/admin/users/{}/role", ann.id);
    let (s, _) = app.call(Method::PUT, &path, bob.bearer(), Some(json!({"role": "user"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "moderators do not grant roles");
    let (s, _) = app.call(Method::PUT, &path, ann.bearer(), Some(json!({"role": "user"}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "nor does an admin change their own");

    let out = cli(&["revoke", "bob", "moderator"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (s, _) = app.get("/admin/reports", bob.bearer()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (_, log) = app.get("/admin/audit", ann.bearer()).await;
    let actions: Vec<(&str, &str)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["detail"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [("role.revoke", "moderator"), ("role.set", "moderator"), ("role.grant", "admin")],
        "newest first"
    );
    assert!(log["items"][2]["actor_id"].is_null(), "the command line has no account");
    assert_eq!(log["items"][1]["actor_id"], ann.id.as_str());
}

async fn a_report_leads_to_removal_everywhere(b: Backend) {
    let app = TestApp::spawn(b).await;
    let author = app.register("author").await;
    let fan = app.register("fan").await;
    let reporter = app.register("reporter").await;
    let second = app.register("second").await;
    let modr = app.register("modr").await;
    grant(&app, &modr, Role::Moderator).await;
    follow(&app, &fan, &author).await;

    // The moderator watches their notification topic: the open count arrives live.
    let mut mod_ws = WsClient::connect(&app.base, &modr.token).await;
    let mut watcher = WsClient::connect(&app.base, &reporter.token).await;

    let m = upload_ready(&app, &author, small_jpeg()).await;
    let media_id = m["id"].as_str().unwrap().to_string();
    let (s, p) =
        app.post("/posts", author.bearer(), json!({"caption": "buy pills now", "media_ids": [media_id]})).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let post = p["id"].as_str().unwrap().to_string();
    let file = local_file(&app, variant(&p["media"][0], "feed")["url"].as_str().unwrap());
    assert!(file.exists());
    jobs_drained(&app).await;
    let (_, feed) = app.get("/feed", fan.bearer()).await;
    assert!(ids(&feed).contains(&post), "in the follower's feed before");
    watcher.subscribe(&format!("post:{post}")).await;

    let (s, r) = report(&app, &reporter, "post", &post, "spam").await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["status"], "open");
    assert_eq!(open_count(&mut mod_ws).await, 1);
    let (s, _) = report(&app, &reporter, "post", &post, "spam").await;
    assert_eq!(s, StatusCode::CONFLICT, "one open report per reporter and target");
    let (s, _) = report(&app, &second, "post", &post, "misinformation").await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(open_count(&mut mod_ws).await, 2);
    let n = eventually(WAIT, || async { notifications_of(&app, &modr, "report").await.pop() }).await;
    assert_eq!(n["target"]["type"], "report");

    // The author edits the caption: the report keeps what was reported.
    let (s, _) =
        app.call(Method::PATCH, &format!("/posts/{post}"), author.bearer(), Some(json!({"caption": "hello"}))).await;
    assert_eq!(s, StatusCode::OK);
    watcher.expect_event(&format!("post:{post}"), "post.updated").await;
    let (s, queue) = app.get("/admin/reports?status=open", modr.bearer()).await;
    assert_eq!(s, StatusCode::OK, "{queue}");
    let items = queue["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], r["id"], "oldest first");
    assert_eq!(items[0]["snapshot"]["caption"], "buy pills now");
    assert_eq!(items[0]["target_user"]["id"], author.id.as_str());
    assert_eq!(items[0]["reporter"]["id"], reporter.id.as_str());
    let (_, count) = app.get("/admin/reports/count", modr.bearer()).await;
    assert_eq!(count["open"], 2);

    let rid = r["id"].as_str().unwrap();
    let (s, v) = app.post(&format!("/admin/reports/{rid}/remove"), modr.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let e = watcher.expect_event(&format!("post:{post}"), "post.deleted").await;
    assert_eq!(e["data"]["id"], post.as_str());
    assert_eq!(open_count(&mut mod_ws).await, 0, "both reports on the post are resolved by its removal");
    let (s, _) = app.get(&format!("/posts/{post}"), author.bearer()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    jobs_drained(&app).await;
    let (_, feed) = app.get("/feed", fan.bearer()).await;
    assert!(!ids(&feed).contains(&post), "gone from the follower's feed");
    eventually(WAIT, || async { (!file.exists()).then_some(()) }).await;

    for who in [&reporter, &second] {
        let n = eventually(WAIT, || async { notifications_of(&app, who, "report_resolved").await.pop() }).await;
        assert_eq!(n["preview"], "removed");
        assert!(
            n["actors"].as_array().unwrap().iter().all(|a| a["id"] != modr.id.as_str()),
            "the moderator is not named"
        );
    }
    let (s, _) = app.post(&format!("/admin/reports/{rid}/remove"), modr.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "resolved already");
    let (_, done) = app.get("/admin/reports?status=resolved", modr.bearer()).await;
    assert_eq!(done["items"].as_array().unwrap().len(), 2);
    assert_eq!(done["items"][0]["resolution"], "removed");
    assert_eq!(done["items"][0]["resolved_by"], modr.id.as_str());
    let (_, log) = app.get("/admin/audit", modr.bearer()).await;
    assert_eq!(log["items"][0]["action"], "post.remove");
    assert_eq!(log["items"][0]["target"]["id"], post.as_str());
    assert_eq!(log["items"][0]["report_id"], rid);

    // A comment and a message go the same way; a dismissal leaves its target alone.
    let other = new_post(&app, &reporter, "a place").await;
    let (_, c) = app.post(&format!("/posts/{other}/comments"), author.bearer(), json!({"body": "rude"})).await;
    let comment = c["id"].as_str().unwrap().to_string();
    let (_, cr) = report(&app, &reporter, "comment", &comment, "harassment").await;
    let (s, _) =
        app.post(&format!("/admin/reports/{}/remove", cr["id"].as_str().unwrap()), modr.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, list) = app.get(&format!("/posts/{other}/comments"), reporter.bearer()).await;
    assert!(list["items"].as_array().unwrap().is_empty(), "{list}");

    let conv = dm(&app, &author, &reporter).await;
    let msg = say(&app, &author, &conv, "nasty").await;
    let msg_id = msg["id"].as_str().unwrap().to_string();
    let (s, _) = report(&app, &second, "message", &msg_id, "harassment").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "only a member may report a message");
    let (s, mr) = report(&app, &reporter, "message", &msg_id, "harassment").await;
    assert_eq!(s, StatusCode::CREATED, "{mr}");
    assert_eq!(mr["target"]["type"], "message");
    let (s, _) =
        app.post(&format!("/admin/reports/{}/dismiss", mr["id"].as_str().unwrap()), modr.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, hist) = app.get(&format!("/conversations/{conv}/messages"), reporter.bearer()).await;
    assert_eq!(hist["items"][0]["body"], "nasty", "dismissed: the message stays");
    let (_, mr) = report(&app, &reporter, "message", &msg_id, "harassment").await;
    let (s, _) =
        app.post(&format!("/admin/reports/{}/remove", mr["id"].as_str().unwrap()), modr.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, hist) = app.get(&format!("/conversations/{conv}/messages"), reporter.bearer()).await;
    assert_eq!(hist["items"][0]["deleted"], true, "a tombstone: {hist}");

    let (_, ur) = report(&app, &reporter, "user", &author.id, "spam").await;
    let (s, _) =
        app.post(&format!("/admin/reports/{}/remove", ur["id"].as_str().unwrap()), modr.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "an account is suspended, not removed");
    mod_ws.close().await;
    watcher.close().await;
}

async fn reports_are_checked_like_reads(b: Backend) {
    let app = TestApp::spawn(b).await;
    let users = quick_users(&app, "rc", 3).await;
    let (owner, stranger, modr) = (&users[0], &users[1], &users[2]);
    grant(&app, modr, Role::Moderator).await;
    let post = new_post(&app, owner, "mine").await;
    let (s, v) = report(&app, owner, "post", &post, "spam").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "not one's own: {v}");
    let (s, v) = report(&app, stranger, "post", &post, "boredom").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "an unknown reason is a malformed body, as documented: {v}");
    let (s, _) = report(&app, stranger, "post", "12345", "spam").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let long = "x".repeat(1001);
    let (s, _) = app
        .post(
            "/reports",
            stranger.bearer(),
            json!({"target_type": "post", "target_id": post, "reason": "other", "note": long}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    make_private(&app, owner).await;
    let (s, _) = report(&app, stranger, "post", &post, "spam").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a private account's post is not the stranger's to see, nor to report");
    let (s, _) = report(&app, stranger, "user", &owner.id, "impersonation").await;
    assert_eq!(s, StatusCode::CREATED, "the profile itself is visible");
    let (s, _) = app.post(&format!("/users/{}/block", stranger.id), owner.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = report(&app, stranger, "user", &owner.id, "spam").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "a blocker does not exist for the blocked");
    let (s, _) =
        app.post("/reports", None, json!({"target_type": "user", "target_id": owner.id, "reason": "spam"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app.get("/admin/reports?status=whatever", modr.bearer()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app.post("/admin/reports/999/dismiss", modr.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A report about a moderator is another moderator's to handle.
    let (s, r) = report(&app, stranger, "user", &modr.id, "harassment").await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) =
        app.post(&format!("/admin/reports/{}/dismiss", r["id"].as_str().unwrap()), modr.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

async fn suspension_hides_the_account_and_unsuspension_restores_it(b: Backend) {
    // Two instances through Redis: the suspended account's sockets close on both.
    let Some(apps) = TestApp::redis_cluster(b, 2).await else { return };
    let (one, two) = (&apps[0], &apps[1]);
    let bad = one.register("bad").await;
    let fan = one.register("fan").await;
    let modr = one.register("modr").await;
    grant(one, &modr, Role::Moderator).await;
    follow(one, &fan, &bad).await;
    let post = new_post(one, &bad, "spam spam").await;
    let fan_post = new_post(one, &fan, "fan's").await;
    one.post(&format!("/posts/{fan_post}/comments"), bad.bearer(), json!({"body": "spam here too"})).await;
    jobs_drained(one).await;

    // The moderator's open count is live on the other instance.
    let mut mod_ws = WsClient::connect(&two.base, &modr.token).await;
    let (s, _) = report(one, &fan, "user", &bad.id, "spam").await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(open_count(&mut mod_ws).await, 1);
    let mut on_one = WsClient::connect(&one.base, &bad.token).await;
    let mut on_two = WsClient::connect(&two.base, &bad.token).await;
    let (s, _) = one.post(&format!("/admin/users/{}/suspension", modr.id), modr.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "not oneself");
    let (s, _) = one.post(&format!("/admin/users/{}/suspension", bad.id), fan.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "moderators only");
    let (s, v) = two.post(&format!("/admin/users/{}/suspension", bad.id), modr.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(on_one.expect_close().await.0, 4505);
    assert_eq!(on_two.expect_close().await.0, 4505);
    assert_eq!(open_count(&mut mod_ws).await, 0, "the suspension resolved the report about the account");
    mod_ws.close().await;
    let (s, _) = two.post(&format!("/admin/users/{}/suspension", bad.id), modr.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "suspended already");

    // Signed out everywhere, and login says why.
    let (s, _) = one.get("/auth/me", bad.bearer()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = two.post("/auth/refresh", None, json!({"refresh_token": bad.refresh})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = two.post("/auth/login", None, json!({"login": "bad", "password": "password123"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "account_suspended");
    let (s, _) = two.post("/auth/login", None, json!({"login": "bad", "password": "wrong password"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the reason is told to the password's holder only");

    // Gone for everyone else: profile, posts, comments, lists, feeds, topics.
    for token in [None, fan.bearer()] {
        let (s, _) = one.get(&format!("/users/{}", bad.id), token).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = one.get(&format!("/posts/{post}"), token).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (_, list) = one.get(&format!("/posts/{fan_post}/comments"), token).await;
        assert!(list["items"].as_array().unwrap().is_empty(), "{list}");
        let (_, users) = one.get("/users/search?q=bad", token).await;
        assert!(users["items"].as_array().unwrap().is_empty(), "{users}");
    }
    let (_, feed) = one.get("/feed", fan.bearer()).await;
    assert!(!ids(&feed).contains(&post));
    let (_, suggested) = one.get("/users/suggestions", fan.bearer()).await;
    assert!(!suggested.to_string().contains(&bad.id), "not suggested: {suggested}");
    let mut ws = WsClient::connect(&two.base, &fan.token).await;
    let r = ws.request(json!({"op": "subscribe", "topic": format!("user:{}", bad.id)})).await;
    assert_eq!(r["error"]["code"], "not_found", "{r}");
    ws.close().await;

    // Unsuspended: all of it is back, and the account may log in again.
    let (s, _) = one.call(Method::DELETE, &format!("/admin/users/{}/suspension", bad.id), modr.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = one.call(Method::DELETE, &format!("/admin/users/{}/suspension", bad.id), modr.bearer(), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "not suspended");
    let (s, _) = one.get(&format!("/posts/{post}"), fan.bearer()).await;
    assert_eq!(s, StatusCode::OK);
    let (_, feed) = one.get("/feed", fan.bearer()).await;
    assert!(ids(&feed).contains(&post), "back in the feed: nothing was deleted");
    let (_, list) = one.get(&format!("/posts/{fan_post}/comments"), fan.bearer()).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (s, _) = two.post("/auth/login", None, json!({"login": "bad", "password": "password123"})).await;
    assert_eq!(s, StatusCode::OK);
    let (_, log) = one.get("/admin/audit", modr.bearer()).await;
    let actions: Vec<&str> = log["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["user.unsuspend", "user.suspend", "role.grant"]);
}

async fn sessions_are_listed_and_ended_one_by_one(b: Backend) {
    let apps = TestApp::cluster(b, 2).await;
    let (one, two) = (&apps[0], &apps[1]);
    let ann = one.register("ann").await;
    let login = |agent: &'static str| async move {
        let resp = one
            .http
            .post(one.api("/auth/login"))
            .header("user-agent", agent)
            .json(&json!({"login": "ann", "password": "password123"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        TestUser::from_auth(&resp.json::<Value>().await.unwrap())
    };
    let phone = login("ChorusPhone/1.0").await;
    let laptop = login("Firefox on a laptop").await;
    let (s, list) = one.get("/auth/sessions", laptop.bearer()).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 3, "register, phone, laptop: {list:?}");
    assert_eq!(list[0]["device"], "Firefox on a laptop", "latest used first");
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[1]["device"], "ChorusPhone/1.0");
    assert_eq!(list[1]["current"], false);
    assert!(list.iter().all(|s| s["ip"] == "127.0.0.1"));
    let phone_session = list[1]["id"].as_str().unwrap().to_string();

    let mut phone_ws = WsClient::connect(&two.base, &phone.token).await;
    let mut laptop_ws = WsClient::connect(&two.base, &laptop.token).await;
    let bob = one.register("bob").await;
    let (s, _) = one.call(Method::DELETE, &format!("/auth/sessions/{phone_session}"), bob.bearer(), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not bob's session");
    let (s, _) = one.call(Method::DELETE, &format!("/auth/sessions/{phone_session}"), laptop.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(phone_ws.expect_close().await.0, 4501, "the phone's socket closes, on the other instance");
    let (s, _) = one.get("/auth/me", phone.bearer()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = two.post("/auth/refresh", None, json!({"refresh_token": phone.refresh})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = one.get("/auth/me", laptop.bearer()).await;
    assert_eq!(s, StatusCode::OK, "the other sessions go on");
    laptop_ws.subscribe(&format!("user:{}", ann.id)).await;
    let (_, list) = one.get("/auth/sessions", laptop.bearer()).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    // A refresh keeps the session (and its place in the list).
    let (s, v) = one.post("/auth/refresh", None, json!({"refresh_token": ann.refresh})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, list) = one.get("/auth/sessions", laptop.bearer()).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["current"], false, "the refreshed register session is now the latest used");
    laptop_ws.close().await;
}

/// The documented defaults (README), each kind counted on its own, per account: the burst
/// passes, the next write answers 429 with `Retry-After` of about one interval.
async fn each_write_limit_answers_429_at_its_documented_rate(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.rate_limit.writes = chorus::config::WriteLimits::default()).await;
    let d = chorus::config::WriteLimits::default();
    let users = quick_users(&app, "wl", 40).await;
    let me = &users[0];
    let others = &users[1..];
    let limited = |s: StatusCode, v: &Value, what: &str| {
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{what}: {v}");
        assert_eq!(v["error"]["code"], "rate_limited");
    };
    let retry_after =
        |resp: &reqwest::Response| -> u64 { resp.headers()["retry-after"].to_str().unwrap().parse().unwrap() };

    // Posts: 10 at once, then one per 60 s.
    for i in 0..d.posts.burst {
        let (s, v) = app.post("/posts", me.bearer(), json!({"caption": format!("p{i}")})).await;
        assert_eq!(s, StatusCode::CREATED, "post {i}: {v}");
    }
    let resp = app
        .http
        .post(app.api("/posts"))
        .bearer_auth(&me.token)
        .json(&json!({"caption": "one more"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&resp);
    let interval = 3600 / d.posts.per_hour as u64;
    assert!(wait >= interval - 2 && wait <= interval + 1, "Retry-After {wait}, interval {interval}");
    let (s, _) = app.post("/posts", users[1].bearer(), json!({"caption": "someone else"})).await;
    assert_eq!(s, StatusCode::CREATED, "per account");

    let post = new_post(&app, &users[1], "target").await;
    for i in 0..d.comments.burst {
        let (s, v) = app.post(&format!("/posts/{post}/comments"), me.bearer(), json!({"body": format!("c{i}")})).await;
        assert_eq!(s, StatusCode::CREATED, "comment {i}: {v}");
    }
    let (s, v) = app.post(&format!("/posts/{post}/comments"), me.bearer(), json!({"body": "more"})).await;
    limited(s, &v, "comments");

    for i in 0..d.reactions.burst {
        let (s, v) =
            app.call(Method::PUT, &format!("/posts/{post}/reaction"), me.bearer(), Some(json!({"type": "love"}))).await;
        assert_eq!(s, StatusCode::OK, "reaction {i}: {v}");
    }
    let (s, v) =
        app.call(Method::PUT, &format!("/posts/{post}/reaction"), me.bearer(), Some(json!({"type": "love"}))).await;
    limited(s, &v, "reactions");
    let (s, _) = app.call(Method::DELETE, &format!("/posts/{post}/reaction"), me.bearer(), None).await;
    assert_eq!(s, StatusCode::OK, "taking a reaction back is never refused");

    for (i, o) in others.iter().take(d.follows.burst as usize).enumerate() {
        let (s, v) = app.post(&format!("/users/{}/follow", o.id), me.bearer(), json!({})).await;
        assert_eq!(s, StatusCode::OK, "follow {i}: {v}");
    }
    let (s, v) =
        app.post(&format!("/users/{}/follow", others[d.follows.burst as usize].id), me.bearer(), json!({})).await;
    limited(s, &v, "follows");

    for i in 0..d.groups.burst {
        let (s, v) = app
            .post(
                "/conversations",
                me.bearer(),
                json!({"kind": "group", "title": format!("g{i}"), "member_ids": [users[1].id]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "group {i}: {v}");
    }
    let (s, v) = app
        .post("/conversations", me.bearer(), json!({"kind": "group", "title": "one more", "member_ids": [users[1].id]}))
        .await;
    limited(s, &v, "groups");

    // Messages: REST and the socket count together; the socket answers with the same error.
    let conv = dm(&app, me, &users[2]).await;
    for i in 0..d.messages.burst - 1 {
        say(&app, me, &conv, &format!("m{i}")).await;
    }
    let mut ws = WsClient::connect(&app.base, &me.token).await;
    let ok = ws.request(json!({"op": "chat.send", "data": {"conversation_id": conv, "body": "last one"}})).await;
    assert_eq!(ok["op"], "ok", "{ok}");
    let r = ws.request(json!({"op": "chat.send", "data": {"conversation_id": conv, "body": "too many"}})).await;
    assert_eq!(r["op"], "error", "{r}");
    assert_eq!(r["error"]["code"], "rate_limited");
    ws.close().await;
    let (s, v) = app.post(&format!("/conversations/{conv}/messages"), me.bearer(), json!({"body": "rest too"})).await;
    limited(s, &v, "messages");

    for i in 0..d.uploads.burst {
        let part = reqwest::multipart::Part::bytes(small_jpeg()).file_name("a.jpg").mime_str("image/jpeg").unwrap();
        let resp = app
            .http
            .post(app.api("/media"))
            .bearer_auth(&me.token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "upload {i}");
    }
    let part = reqwest::multipart::Part::bytes(small_jpeg()).file_name("a.jpg").mime_str("image/jpeg").unwrap();
    let resp = app
        .http
        .post(app.api("/media"))
        .bearer_auth(&me.token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "uploads");

    for (i, o) in others.iter().take(d.reports.burst as usize).enumerate() {
        let (s, v) = report(&app, me, "user", &o.id, "spam").await;
        assert_eq!(s, StatusCode::CREATED, "report {i}: {v}");
    }
    let (s, v) = report(&app, me, "user", &others[d.reports.burst as usize].id, "spam").await;
    limited(s, &v, "reports");
}

/// In a cluster the counters are in Redis: writes on either instance count together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_limits_are_shared_by_every_instance() {
    let Some(apps) = TestApp::redis_cluster_with(Backend::Sqlite, 2, |c| {
        c.rate_limit.writes = chorus::config::WriteLimits::all(60, 3)
    })
    .await
    else {
        return;
    };
    let ann = apps[0].register("ann").await;
    for (i, app) in [&apps[0], &apps[1], &apps[0]].into_iter().enumerate() {
        let (s, v) = app.post("/posts", ann.bearer(), json!({"caption": format!("p{i}")})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v) = apps[1].post("/posts", ann.bearer(), json!({"caption": "fourth"})).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
}

async fn the_audit_log_is_append_only(b: Backend) {
    let app = TestApp::spawn(b).await;
    let users = quick_users(&app, "al", 2).await;
    grant(&app, &users[0], Role::Moderator).await;
    let mut tx = app.state.store.begin().await.unwrap();
    let update = chorus::exec!(tx.ex(), c => sqlx::query("UPDATE audit_log SET action = 'nothing'").execute(c).await);
    assert!(update.is_err(), "an update is refused");
    drop(tx);
    let mut tx = app.state.store.begin().await.unwrap();
    let delete = chorus::exec!(tx.ex(), c => sqlx::query("DELETE FROM audit_log").execute(c).await);
    assert!(delete.is_err(), "a deletion is refused");
    drop(tx);
    let (_, log) = app.get("/admin/audit", users[0].bearer()).await;
    assert_eq!(log["items"].as_array().unwrap().len(), 1);
}

async fn inbox(app: &TestApp, who: &TestUser) -> Vec<String> {
    let (_, page) = app.get("/conversations", who.bearer()).await;
    page["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
}

async fn requests_of(app: &TestApp, who: &TestUser) -> Vec<Value> {
    let (s, page) = app.get("/conversations/requests", who.bearer()).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn settings(app: &TestApp, who: &TestUser, who_can_message: &str) {
    let (s, v) = app
        .call(Method::PUT, "/users/me/settings", who.bearer(), Some(json!({"who_can_message": who_can_message})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["who_can_message"], who_can_message);
}

/// With the default `following`, a stranger's first message is a request: outside the
/// inbox, unheard (no event, no notification) until accepted; declining hides it and blocks
/// nobody. Groups invite instead of adding.
async fn messages_from_outside_who_can_message_are_requests(b: Backend) {
    let app =
        TestApp::spawn_with(b, |c| c.default_who_can_message = chorus::domain::user::WhoCanMessage::Following).await;
    let users = quick_users(&app, "dc", 6).await;
    let (bea, ann, cal, dee, eve) = (&users[0], &users[1], &users[2], &users[3], &users[4]);
    let (_, me) = app.get("/auth/me", bea.bearer()).await;
    assert_eq!(me["settings"]["who_can_message"], "following", "the default");
    let mut bea_ws = WsClient::connect(&app.base, &bea.token).await;

    let conv = dm(&app, ann, bea).await;
    let (_, view) = app.get(&format!("/conversations/{conv}"), ann.bearer()).await;
    assert_eq!(view["requested"][0]["id"], bea.id.as_str(), "{view}");
    assert_eq!(view["members"].as_array().unwrap().len(), 1);
    say(&app, ann, &conv, "hi, remember me?").await;
    jobs_drained(&app).await;
    assert!(!inbox(&app, bea).await.contains(&conv), "not in the inbox");
    assert!(notifications_of(&app, bea, "message").await.is_empty(), "no notification (nor its e-mail)");
    let reqs = requests_of(&app, bea).await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["kind"], "message");
    assert_eq!(reqs[0]["from"]["id"], ann.id.as_str());
    assert_eq!(reqs[0]["conversation"]["last_message"]["body"], "hi, remember me?");
    let (s, _) = app.get(&format!("/conversations/{conv}/messages"), bea.bearer()).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not a member yet");
    let r = bea_ws.request(json!({"op": "subscribe", "topic": format!("chat:{conv}")})).await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    let (s, _) = app.post(&format!("/conversations/{conv}/accept"), ann.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "only the asked one accepts");

    // Accepted: the inbox, the history, and live messages from now on.
    let (s, v) = app.post(&format!("/conversations/{conv}/accept"), bea.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["members"].as_array().unwrap().len(), 2);
    bea_ws.expect_event(&format!("chat:{conv}"), "member.added").await;
    assert!(inbox(&app, bea).await.contains(&conv));
    assert!(requests_of(&app, bea).await.is_empty());
    say(&app, ann, &conv, "great").await;
    let e = bea_ws.expect_event(&format!("chat:{conv}"), "message.created").await;
    assert_eq!(e["data"]["body"], "great");
    let (_, hist) = app.get(&format!("/conversations/{conv}/messages"), bea.bearer()).await;
    assert_eq!(hist["items"].as_array().unwrap().len(), 2, "the request's message too");

    // Declined: hidden for good, nobody blocked.
    let conv2 = dm(&app, cal, bea).await;
    say(&app, cal, &conv2, "buy my course").await;
    let (s, _) = app.post(&format!("/conversations/{conv2}/decline"), bea.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    say(&app, cal, &conv2, "hello??").await;
    assert!(requests_of(&app, bea).await.is_empty());
    assert!(!inbox(&app, bea).await.contains(&conv2));
    let (s, _) = app.get(&format!("/users/{}", bea.id), cal.bearer()).await;
    assert_eq!(s, StatusCode::OK, "declining blocks nothing");
    let (s, _) = app.post(&format!("/conversations/{conv2}/decline"), bea.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Someone bea follows writes straight in; `everyone` lets anyone in.
    follow(&app, bea, dee).await;
    let conv3 = dm(&app, dee, bea).await;
    assert!(inbox(&app, bea).await.contains(&conv3), "bea follows dee");
    settings(&app, bea, "everyone").await;
    let conv4 = dm(&app, eve, bea).await;
    assert!(inbox(&app, bea).await.contains(&conv4));

    // Groups: `nobody` turns every addition into an invitation.
    settings(&app, bea, "nobody").await;
    let (s, g) = app
        .post("/conversations", dee.bearer(), json!({"kind": "group", "title": "club", "member_ids": [bea.id, eve.id]}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let group = g["id"].as_str().unwrap().to_string();
    assert_eq!(g["members"].as_array().unwrap().len(), 1, "only dee: neither bea nor eve follows dee");
    assert_eq!(g["requested"].as_array().unwrap().len(), 2);
    assert!(!inbox(&app, bea).await.contains(&group));
    let reqs = requests_of(&app, bea).await;
    assert_eq!(reqs[0]["kind"], "invitation");
    assert_eq!(reqs[0]["conversation"]["id"], group.as_str());
    let (s, _) = app.post(&format!("/conversations/{group}/accept"), bea.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(inbox(&app, bea).await.contains(&group));

    // Opening the conversation one was asked into accepts it.
    let conv5 = dm(&app, &users[5], dee).await;
    let again = dm(&app, dee, &users[5]).await;
    assert_eq!(conv5, again);
    assert!(inbox(&app, dee).await.contains(&conv5));
    bea_ws.close().await;
}

/// The next verification mail: its code and link token.
async fn code_mail(inbox: &mut tokio::sync::mpsc::UnboundedReceiver<smtp::Received>, to: &str) -> (String, String) {
    let mail = tokio::time::timeout(WAIT, inbox.recv()).await.expect("a verification mail arrives").unwrap();
    assert_eq!(mail.to, [to.to_string()]);
    let body = mail.body();
    let code = body.lines().map(str::trim).find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()));
    let token = body.split("verify-email?token=").nth(1).map(|t| t.split_whitespace().next().unwrap().to_string());
    (code.unwrap_or_else(|| panic!("no code in {body}")).to_string(), token.expect("a link"))
}

/// With SMTP configured, verification is on by default: an unverified account reads but
/// does not write; the code (or the link) verifies it once; codes are hashed at rest.
async fn email_is_verified_with_a_code_or_a_link(b: Backend) {
    let (smtp_url, mut inbox) = smtp::start().await;
    let app = TestApp::spawn_with(b, |c| {
        c.smtp_url = Some(smtp_url);
        c.auth.require_verified_email = None; // the default: on, with SMTP
        let d = chorus::config::RateLimitConfig::default();
        (c.rate_limit.auth_per_account_per_minute, c.rate_limit.auth_account_burst) =
            (d.auth_per_account_per_minute, d.auth_account_burst);
    })
    .await;
    let ann = app.register("ann").await;
    let (code, _) = code_mail(&mut inbox, "ann@example.com").await;
    let (_, me) = app.get("/auth/me", ann.bearer()).await;
    assert_eq!(me["email_verified"], false);

    // Reading works; writing does not.
    let (s, _) = app.get("/explore", ann.bearer()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app.post("/posts", ann.bearer(), json!({"caption": "hello"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "email_unverified");
    let bob = app.register("bob").await;
    let (bob_code, bob_token) = code_mail(&mut inbox, "bob@example.com").await;
    let (s, v) = app.post(&format!("/users/{}/follow", bob.id), ann.bearer(), json!({})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("email_unverified")));

    // Nothing in the database gives the code away.
    let mut c = app.state.store.conn().await.unwrap();
    let stored: Vec<String> = chorus::run!(c.ex(), c => sqlx::query_scalar("SELECT code_hash FROM email_verifications")
        .fetch_all(c).await)
    .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|h| !h.contains(&code) && h.len() == 64));
    drop(c);

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (s, _) = app.post("/auth/email/verify", ann.bearer(), json!({"code": wrong})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app.post("/auth/email/verify", None, json!({"code": code})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a code needs the account");
    let (s, _) = app.post("/auth/email/verify", bob.bearer(), json!({"code": code})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "ann's code is not bob's");
    let (s, v) = app.post("/auth/email/verify", ann.bearer(), json!({"code": code})).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (_, me) = app.get("/auth/me", ann.bearer()).await;
    assert_eq!(me["email_verified"], true);
    let (s, _) = app.post("/posts", ann.bearer(), json!({"caption": "hello"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app.post("/auth/email/verify", ann.bearer(), json!({"code": code})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "single use");
    let (s, _) = app.post("/auth/email/resend", ann.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "verified already");

    // Bob uses the link, from anywhere; his code then no longer works.
    let (s, _) = app.post("/auth/email/verify", None, json!({"token": bob_token})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.post("/auth/email/verify", None, json!({"token": bob_token})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a link works once");
    let (s, _) = app.post("/auth/email/verify", bob.bearer(), json!({"code": bob_code})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // A new address is unverified until its own code is used; the old code is gone.
    let (s, v) = app
        .call(
            Method::PUT,
            "/auth/email",
            ann.bearer(),
            Some(json!({"email": "ann2@example.com", "password": "password123"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["email_verified"], false);
    let (new_code, _) = code_mail(&mut inbox, "ann2@example.com").await;
    let (s, _) = app
        .call(
            Method::PUT,
            "/auth/email",
            ann.bearer(),
            Some(json!({"email": "bob@example.com", "password": "password123"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "bob's address");
    let (s, _) = app.post("/posts", ann.bearer(), json!({"caption": "again"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Resending is limited per account (the auth account limit: 5 at once; the refused
    // resend above counted).
    let mut last = String::new();
    for _ in 0..4 {
        let (s, _) = app.post("/auth/email/resend", ann.bearer(), json!({})).await;
        assert_eq!(s, StatusCode::ACCEPTED);
        last = code_mail(&mut inbox, "ann2@example.com").await.0;
    }
    let (s, v) = app.post("/auth/email/resend", ann.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    if new_code != last {
        let (s, _) = app.post("/auth/email/verify", ann.bearer(), json!({"code": new_code})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a resend ends the earlier code");
    }
    let (s, _) = app.post("/auth/email/verify", ann.bearer(), json!({"code": last})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // Five wrong codes end a code.
    let cal = app.register("cal").await;
    let (cal_code, _) = code_mail(&mut inbox, "cal@example.com").await;
    let other = if cal_code == "123456" { "654321" } else { "123456" };
    for _ in 0..5 {
        let (s, _) = app.post("/auth/email/verify", cal.bearer(), json!({"code": other})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (s, _) = app.post("/auth/email/verify", cal.bearer(), json!({"code": cal_code})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "no sixth guess, not even the right one");
}

/// An expired code does not verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_codes_do_not_verify() {
    let (smtp_url, mut inbox) = smtp::start().await;
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.smtp_url = Some(smtp_url);
        c.auth.require_verified_email = Some(true);
        c.auth.verification_ttl_secs = Some(0);
    })
    .await;
    let ann = app.register("ann").await;
    let (code, token) = code_mail(&mut inbox, "ann@example.com").await;
    let (s, _) = app.post("/auth/email/verify", ann.bearer(), json!({"code": code})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app.post("/auth/email/verify", None, json!({"token": token})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn count(app: &TestApp, sql: &str, id: &str) -> i64 {
    let id: chorus::domain::Id = id.parse().unwrap();
    let mut c = app.state.store.conn().await.unwrap();
    chorus::run!(c.ex(), c => sqlx::query_scalar::<_, i64>(sql).bind(id).fetch_one(c).await).unwrap()
}

/// An account deletion signs out at once, hides at once, and the erasure leaves no row of
/// the account's content and no stored file; what others see stays consistent.
async fn account_deletion_erases_everything_and_keeps_counts_right(b: Backend) {
    let app = TestApp::spawn(b).await;
    let gone = app.register("gone").await;
    let fay = app.register("fay").await;
    let gil = app.register("gil").await;
    follow(&app, &fay, &gone).await;
    follow(&app, &gone, &fay).await;
    let m = upload_ready(&app, &gone, small_jpeg()).await;
    let (_, p) = app.post("/posts", gone.bearer(), json!({"caption": "mine", "media_ids": [m["id"]]})).await;
    let post_file = local_file(&app, variant(&p["media"][0], "feed")["url"].as_str().unwrap());
    let avatar = upload_ready(&app, &gone, small_jpeg()).await;
    let (s, _) =
        app.call(Method::PUT, "/users/me/avatar", gone.bearer(), Some(json!({"media_id": avatar["id"]}))).await;
    assert_eq!(s, StatusCode::OK);
    let avatar_file = local_file(&app, variant(&avatar, "thumb")["url"].as_str().unwrap());
    let loose = upload_ready(&app, &gone, small_jpeg()).await;
    let loose_file = local_file(&app, variant(&loose, "thumb")["url"].as_str().unwrap());
    let fays = new_post(&app, &fay, "fay's").await;
    let (_, c1) = app.post(&format!("/posts/{fays}/comments"), gone.bearer(), json!({"body": "with a reply"})).await;
    app.post(&format!("/posts/{fays}/comments"), fay.bearer(), json!({"body": "reply", "parent_id": c1["id"]})).await;
    app.post(&format!("/posts/{fays}/comments"), gone.bearer(), json!({"body": "alone"})).await;
    // A reaction on what becomes a tombstone goes too.
    let c1_id = c1["id"].as_str().unwrap();
    app.call(Method::PUT, &format!("/comments/{c1_id}/reaction"), gone.bearer(), Some(json!({"type": "love"}))).await;
    app.call(Method::PUT, &format!("/posts/{fays}/reaction"), gone.bearer(), Some(json!({"type": "love"}))).await;
    app.call(Method::PUT, &format!("/posts/{fays}/reaction"), gil.bearer(), Some(json!({"type": "love"}))).await;
    app.post(&format!("/posts/{fays}/save"), gone.bearer(), json!({})).await;
    let conv = dm(&app, &gone, &fay).await;
    let msg = say(&app, &gone, &conv, "a secret").await;
    app.call(
        Method::PUT,
        &format!("/messages/{}/reaction", msg["id"].as_str().unwrap()),
        fay.bearer(),
        Some(json!({"type": "love"})),
    )
    .await;
    let (_, g) = app
        .post("/conversations", gone.bearer(), json!({"kind": "group", "title": "g", "member_ids": [fay.id, gil.id]}))
        .await;
    let group = g["id"].as_str().unwrap().to_string();
    say(&app, &gone, &group, "hello group").await;
    jobs_drained(&app).await;
    let mut ws = WsClient::connect(&app.base, &gone.token).await;

    let (s, _) = app.call(Method::DELETE, "/users/me", gone.bearer(), Some(json!({"password": "wrong one"}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, v) = app.call(Method::DELETE, "/users/me", gone.bearer(), Some(json!({"password": "password123"}))).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(ws.expect_close().await.0, 4501, "signed out everywhere at once");
    let (s, _) = app.get("/auth/me", gone.bearer()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = app.post("/auth/login", None, json!({"login": "gone", "password": "password123"})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    jobs_drained(&app).await;

    // No row of the account's content is left.
    let id = gone.id.as_str();
    for (what, sql) in [
        ("posts", "SELECT COUNT(*) FROM posts WHERE author_id = $1"),
        ("live comments", "SELECT COUNT(*) FROM comments WHERE author_id = $1 AND deleted = FALSE"),
        ("comment text", "SELECT COUNT(*) FROM comments WHERE author_id = $1 AND body <> ''"),
        ("reactions", "SELECT COUNT(*) FROM reactions WHERE user_id = $1"),
        ("follows", "SELECT COUNT(*) FROM follows WHERE follower_id = $1 OR followee_id = $1"),
        ("saves", "SELECT COUNT(*) FROM saves WHERE user_id = $1"),
        ("notifications", "SELECT COUNT(*) FROM notifications WHERE user_id = $1"),
        ("as an actor", "SELECT COUNT(*) FROM notification_actors WHERE actor_id = $1"),
        ("media", "SELECT COUNT(*) FROM media WHERE owner_id = $1"),
        (
            "message text",
            "SELECT COUNT(*) FROM messages WHERE sender_id = $1 AND (deleted = FALSE OR body IS NOT NULL)",
        ),
        (
            "group memberships",
            "SELECT COUNT(*) FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id WHERE m.user_id = $1 AND c.kind = 'group'",
        ),
        ("sessions", "SELECT COUNT(*) FROM refresh_tokens WHERE user_id = $1"),
        (
            "profile",
            "SELECT COUNT(*) FROM users WHERE id = $1 AND (username NOT LIKE 'deleted-%' OR email NOT LIKE 'deleted-%' OR bio <> '' OR avatar_media_id IS NOT NULL OR password_hash <> '!')",
        ),
    ] {
        assert_eq!(count(&app, sql, id).await, 0, "{what}");
    }
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM comments WHERE author_id = $1", id).await,
        1,
        "the tombstone with a reply stays"
    );
    for f in [&post_file, &avatar_file, &loose_file] {
        let f = f.clone();
        eventually(WAIT, || {
            let f = f.clone();
            async move { (!f.exists()).then_some(()) }
        })
        .await;
    }

    // Everyone else's counts are right.
    let (_, fay_profile) = app.get(&format!("/users/{}", fay.id), gil.bearer()).await;
    assert_eq!((fay_profile["follower_count"].as_i64(), fay_profile["following_count"].as_i64()), (Some(0), Some(0)));
    let (_, post) = app.get(&format!("/posts/{fays}"), gil.bearer()).await;
    assert_eq!(post["reaction_counts"], json!({"love": 1}), "gil's reaction only");
    assert_eq!(
        post["comment_count"], 1,
        "the reply (a tombstone does not count, as when its author deletes it): {post}"
    );
    let (_, hist) = app.get(&format!("/conversations/{conv}/messages"), fay.bearer()).await;
    assert_eq!(hist["items"][0]["deleted"], true, "readable, from a deleted account: {hist}");
    assert_eq!(hist["items"][0]["sender"]["display_name"], "Deleted account");
    let (_, gv) = app.get(&format!("/conversations/{group}"), fay.bearer()).await;
    assert_eq!(gv["members"].as_array().unwrap().len(), 2, "left the group");
    // The username is free again.
    let again = app.register("gone").await;
    assert_ne!(again.id, gone.id);
}

/// A kill of the instance in the middle of an erasure loses nothing: the job is run again
/// after its lease and finishes (the real binary, SIGKILLed, on SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_survives_a_killed_instance() {
    let mut bin = crate::support::Binary::start(&[
        ("CHORUS_RATE_LIMIT__WRITES__POSTS__PER_HOUR", "1000000"),
        ("CHORUS_RATE_LIMIT__WRITES__POSTS__BURST", "100000"),
    ])
    .await;
    let (http, base) = (bin.http.clone(), bin.base.clone());
    let api = |p: &str| format!("{base}/api/v1{p}");
    let reg = |name: &'static str| bin.register(name);
    let gone = reg("gone").await;
    let fan = reg("fan").await;
    http.post(api(&format!("/users/{}/follow", gone.id)))
        .bearer_auth(&fan.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    const POSTS: i64 = 150;
    for i in 0..POSTS {
        let r = http
            .post(api("/posts"))
            .bearer_auth(&gone.token)
            .json(&json!({"caption": format!("p{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let db = bin.db().await;
    let gone_id: i64 = gone.id.parse().unwrap();
    let posts_left = || {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM posts WHERE author_id = $1")
                .bind(gone_id)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let r = http
        .delete(api("/users/me"))
        .bearer_auth(&gone.token)
        .json(&json!({"password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // Killed once the erasure is under way, before it is done.
    eventually(Duration::from_secs(30), || async { (posts_left().await < POSTS).then_some(()) }).await;
    bin.kill();
    let left = posts_left().await;
    eprintln!("killed with {left} of {POSTS} posts left");
    bin.restart().await;
    eventually(Duration::from_secs(60), || async {
        let name: String =
            sqlx::query_scalar("SELECT username FROM users WHERE id = $1").bind(gone_id).fetch_one(&db).await.unwrap();
        name.starts_with("deleted-").then_some(())
    })
    .await;
    assert_eq!(posts_left().await, 0);
    let fan_id: i64 = fan.id.parse().unwrap();
    let following: i64 = sqlx::query_scalar("SELECT following_count FROM users WHERE id = $1")
        .bind(fan_id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(following, 0, "the follow went, and the count with it");
    let jobs: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'erase_account'").fetch_one(&db).await.unwrap();
    assert_eq!(jobs, 0, "the erasure finished (not dead-lettered)");
}

/// An export holds what it says, is its owner's only, and expires.
async fn a_data_export_holds_everything_and_is_the_owners_only(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    follow(&app, &ann, &bob).await;
    follow(&app, &bob, &ann).await;
    let m = upload_ready(&app, &ann, small_jpeg()).await;
    let (_, p) = app.post("/posts", ann.bearer(), json!({"caption": "my holiday #sea", "media_ids": [m["id"]]})).await;
    let bobs = new_post(&app, &bob, "bob's").await;
    app.post(&format!("/posts/{bobs}/comments"), ann.bearer(), json!({"body": "lovely"})).await;
    app.call(Method::PUT, &format!("/posts/{bobs}/reaction"), ann.bearer(), Some(json!({"type": "love"}))).await;
    let conv = dm(&app, &ann, &bob).await;
    say(&app, &ann, &conv, "first").await;
    say(&app, &bob, &conv, "second").await;
    let mut ws = WsClient::connect(&app.base, &ann.token).await;

    let (s, e) = app.post("/users/me/export", ann.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{e}");
    let export = e["id"].as_str().unwrap().to_string();
    // Told when it is ready.
    loop {
        let n = ws.expect_event("notification", "notification.created").await;
        if n["data"]["kind"] == "export_ready" {
            assert_eq!(n["data"]["target"], json!({"type": "export", "id": export}));
            break;
        }
    }
    ws.close().await;
    let (s, v) = app.get(&format!("/users/me/exports/{export}"), ann.bearer()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "ready");
    let url = format!("{}{}", app.base, v["download_url"].as_str().unwrap());
    let (s, _) = app.get(&format!("/users/me/exports/{export}"), bob.bearer()).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "the owner's only");
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.http.get(&url).bearer_auth(&bob.token).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let resp = app.http.get(&url).bearer_auth(&ann.token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let bytes = resp.bytes().await.unwrap().to_vec();
    assert_eq!(Some(bytes.len() as i64), v["bytes"].as_i64());

    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut read = |name: &str| -> Vec<u8> {
        let mut f = zip.by_name(name).unwrap_or_else(|_| panic!("{name} in the export"));
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut out).unwrap();
        out
    };
    let json_of = |b: Vec<u8>| -> Value { serde_json::from_slice(&b).unwrap() };
    let profile = json_of(read("profile.json"));
    assert_eq!(profile["username"], "ann");
    assert_eq!(profile["email"], "ann@example.com");
    let posts = json_of(read("posts.json"));
    assert_eq!(posts[0]["caption"], "my holiday #sea");
    assert_eq!(json_of(read("comments.json"))[0]["body"], "lovely");
    let reactions = json_of(read("reactions.json"));
    assert_eq!(reactions[0]["target_id"], bobs.as_str());
    assert_eq!(reactions[0]["type"], "love");
    let follows = json_of(read("follows.json"));
    assert_eq!(follows["following"][0]["username"], "bob");
    assert_eq!(follows["followers"][0]["username"], "bob");
    let convs = json_of(read("conversations.json"));
    let bodies: Vec<&str> =
        convs[0]["messages"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["first", "second"], "oldest first");
    let media_name = format!("media/{}-feed.jpg", m["id"].as_str().unwrap());
    let stored = std::fs::read(local_file(&app, variant(&p["media"][0], "feed")["url"].as_str().unwrap())).unwrap();
    assert_eq!(read(&media_name), stored, "the stored file itself");

    // Expired: gone, file and all.
    let file = app.dir.path().join("exports").join(format!("{export}.zip"));
    assert!(file.exists());
    let mut c = app.state.store.conn().await.unwrap();
    let eid: chorus::domain::Id = export.parse().unwrap();
    chorus::exec!(c.ex(), c => sqlx::query("UPDATE exports SET expires_at = 1 WHERE id = $1").bind(eid).execute(c).await)
        .unwrap();
    drop(c);
    assert_eq!(app.http.get(&url).bearer_auth(&ann.token).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    assert!(!file.exists(), "an expired export is deleted");
}

/// A removal reaches a reader who was away even when its author is suspended since: the
/// replay passes `post.deleted` whoever made it (everything else of theirs stays out).
async fn a_removal_is_replayed_after_its_author_is_suspended(b: Backend) {
    let app = TestApp::spawn(b).await;
    let users = quick_users(&app, "rr", 3).await;
    let (ann, bob, modr) = (&users[0], &users[1], &users[2]);
    grant(&app, modr, Role::Moderator).await;
    follow(&app, bob, ann).await;
    jobs_drained(&app).await;
    let mut ws = WsClient::connect(&app.base, &bob.token).await;
    let kept = new_post(&app, ann, "kept").await;
    let e = ws.expect_event("feed", "post.created").await;
    assert_eq!(e["data"]["id"], kept.as_str());
    let seq = e["seq"].as_str().unwrap().to_string();
    ws.close().await;
    let gone = new_post(&app, ann, "gone").await;
    let (s, _) = app.call(Method::DELETE, &format!("/posts/{gone}"), ann.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.call(Method::DELETE, &format!("/posts/{kept}"), ann.bearer(), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    jobs_drained(&app).await;
    let (s, _) = app.post(&format!("/admin/users/{}/suspension", ann.id), modr.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let mut ws = WsClient::connect_resuming(&app.base, &bob.token, json!({"feed": seq})).await;
    // The suspended author's post.created is not replayed; both removals are.
    let mut deleted = Vec::new();
    while deleted.len() < 2 {
        let e = ws.next_event().await;
        assert_eq!(e["event"], "post.deleted", "{e}");
        deleted.push(e["data"]["id"].as_str().unwrap().to_string());
    }
    deleted.sort();
    let mut want = vec![kept, gone];
    want.sort();
    assert_eq!(deleted, want);
    ws.close().await;
}
