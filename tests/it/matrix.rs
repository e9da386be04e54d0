//! The authorization matrix: every REST operation of the served OpenAPI document, every
//! socket topic and action, and file URLs, tried by every kind of actor against every kind
//! of target, with the outcome the policy promises.
//!
//! The rows are data ([`ROWS`]). [`every_served_operation_has_a_row`] fails when the served
//! document has an operation without a row (or a row names an operation that is not
//! served), so a new route cannot skip the matrix.
//!
//! Each row is run in a world of its own, made for its target: an `owner` and one account
//! for each other actor, standing towards the owner as the actor's name says. Operations
//! other than `GET` get fresh targets for each actor, so one actor's deletion does not
//! change what the next one meets.
//!
//! The world runs on two instances sharing a database and a broker: REST calls go to the
//! first, sockets and file URLs to the second, so every socket row is also a cross-instance
//! row.
//!
//! # Expectations
//! Twelve entries, in the order of [`ACTORS`]: anonymous, owner, follower (approved),
//! pending (requested, a private owner's only; towards a public owner a stranger),
//! stranger, blocked (by the owner), blocker (blocked the owner), muted (an approved
//! follower the owner muted), member and former member (of the owner's conversation),
//! suspended (a stranger a moderator suspended: its token was revoked with it) and
//! moderator (a stranger with the moderator role; last, since some of its actions suspend
//! the owner). Each
//! entry is an HTTP status; `200+` and `200-` also say whether the target is in the list
//! answered, and for sockets `ok` means the subscription or action succeeded (errors map
//! to the status REST would answer).

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::chat::dm;
use crate::media::{small_jpeg, upload_ready, variant};
use crate::posts::{follow, make_private, quick_users};
use crate::support::ws::{WsClient, ws_url};
use crate::support::{Backend, TestApp, TestUser, eventually};

/// The kinds of actor, in the order of every row's expectations.
const ACTORS: [&str; 12] = [
    "anonymous",
    "owner",
    "follower",
    "pending",
    "stranger",
    "blocked",
    "blocker",
    "muted",
    "member",
    "former",
    "suspended",
    "moderator",
];

/// What a row acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// Nothing in particular (the actor's own things, public lists).
    None,
    /// A public account, its post and its comment.
    Public,
    /// A private account, its post and its comment.
    Private,
    /// The owner's upload, attached to nothing.
    Unattached,
    /// An image on a public account's post.
    PublicPostMedia,
    /// An image on a private account's post.
    PrivatePostMedia,
    /// An image sent in the direct conversation of the owner and the member.
    DmMedia,
    /// The direct conversation of the owner and the member, with the owner's message.
    Dm,
    /// The owner's group with the member (the former member left), with the owner's message.
    Group,
    /// A public post of a third account (`host`) that the owner comments on.
    HostPost,
    /// A direct conversation the host opened with the owner, who does not follow the host:
    /// a message request of the owner's, with the host's message.
    Request,
}

struct Row {
    /// `METHOD /path` for REST (the OpenAPI path, placeholders filled from the fixture);
    /// `WS subscribe {topic}`, `WS {action}` for sockets; `FILE signed|unsigned|tampered`;
    /// `LIVE {topic}`: does the owner's comment reach an actor watching the topic?
    op: &'static str,
    target: Target,
    /// JSON body template, placeholders as in the path.
    body: Option<&'static str>,
    expect: &'static str,
}

const fn row(op: &'static str, target: Target, body: Option<&'static str>, expect: &'static str) -> Row {
    Row { op, target, body, expect }
}

use Target::*;

#[rustfmt::skip]
const ROWS: &[Row] = &[
    //                                                              anon owner fol  pend str  blkd blkr mute mem  form susp mod
    // ---- auth
    row("POST /auth/register", None, Some(r#"{"username":"{unique}","email":"{unique}@example.com","password":"password123"}"#),
                                                                  "201  201  201  201  201  201  201  201  201  201  201  201"),
    row("POST /auth/login", Public, Some(r#"{"login":"{owner_name}","password":"not the password"}"#),
                                                                  "401  401  401  401  401  401  401  401  401  401  401  401"),
    row("POST /auth/refresh", None, Some(r#"{"refresh_token":"not a token"}"#),
                                                                  "401  401  401  401  401  401  401  401  401  401  401  401"),
    row("POST /auth/logout", None, Some("{}"),                    "401  204  204  204  204  204  204  204  204  204  401  204"),
    row("GET /auth/me", None, Option::None,                       "401  200  200  200  200  200  200  200  200  200  401  200"),
    row("PUT /auth/password", None, Some(r#"{"current_password":"wrong one","new_password":"new password 1"}"#),
                                                                  "401  422  422  422  422  422  422  422  422  422  401  422"),
    row("POST /auth/password/forgot", None, Some(r#"{"email":"nobody@example.com"}"#),
                                                                  "202  202  202  202  202  202  202  202  202  202  202  202"),
    row("POST /auth/password/reset", None, Some(r#"{"token":"not a token","new_password":"new password 1"}"#),
                                                                  "422  422  422  422  422  422  422  422  422  422  422  422"),
    // ---- users
    row("GET /users?limit=100", Public, Option::None,                       "200+ 200+ 200+ 200+ 200+ 200- 200- 200+ 200+ 200+  401  200+"),
    row("GET /users?limit=100", Private, Option::None,                      "200+ 200+ 200+ 200+ 200+ 200- 200- 200+ 200+ 200+  401  200+"),
    row("GET /users/search?q={owner_name}", Public, Option::None,                "200+ 200+ 200+ 200+ 200+ 200- 200- 200+ 200+ 200+  401  200+"),
    row("GET /users/suggestions", None, Option::None,             "401  200  200  200  200  200  200  200  200  200  401  200"),
    row("PATCH /users/me", None, Some(r#"{"display_name":"Renamed"}"#),
                                                                  "401  200  200  200  200  200  200  200  200  200  401  200"),
    row("DELETE /users/me", None, Some(r#"{"password":"not the password"}"#),
                                                                  "401  422  422  422  422  422  422  422  422  422  401  422"),
    row("POST /users/me/export", None, Some("{}"),              "401  202  202  202  202  202  202  202  202  202  401  202"),
    row("GET /users/me/exports/{export}", None, Option::None,     "401  200  404  404  404  404  404  404  404  404  401  404"),
    row("GET /users/me/exports/{export}/download", None, Option::None,
                                                                  "401  200  404  404  404  404  404  404  404  404  401  404"),
    row("PUT /users/me/settings", None, Some("{}"),               "401  200  200  200  200  200  200  200  200  200  401  200"),
    row("PUT /users/me/avatar", None, Some(r#"{"media_id":null}"#),
                                                                  "401  200  200  200  200  200  200  200  200  200  401  200"),
    row("GET /users/me/saved", None, Option::None,                "401  200  200  200  200  200  200  200  200  200  401  200"),
    row("GET /users/me/follow-requests", None, Option::None,      "401  200  200  200  200  200  200  200  200  200  401  200"),
    row("POST /users/me/follow-requests/{pending}/approve", Private, Some("{}"),
                                                                  "401  204  404  404  404  404  404  404  404  404  401  404"),
    row("DELETE /users/me/follow-requests/{pending}", Private, Option::None,
                                                                  "401  204  404  404  404  404  404  404  404  404  401  404"),
    row("GET /users/{owner}", Public, Option::None,               "200  200  200  200  200  404  404  200  200  200  401  200"),
    row("GET /users/{owner}", Private, Option::None,              "200  200  200  200  200  404  404  200  200  200  401  200"),
    row("GET /users/{owner}/followers", Public, Option::None,     "200  200  200  200  200  404  404  200  200  200  401  200"),
    row("GET /users/{owner}/followers", Private, Option::None,    "403  200  200  403  403  404  404  200  403  403  401  403"),
    row("GET /users/{owner}/following", Public, Option::None,     "200  200  200  200  200  404  404  200  200  200  401  200"),
    row("GET /users/{owner}/following", Private, Option::None,    "403  200  200  403  403  404  404  200  403  403  401  403"),
    row("GET /users/{owner}/posts", Public, Option::None,         "200+ 200+ 200+ 200+ 200+ 404  404  200+ 200+ 200+  401  200+"),
    row("GET /users/{owner}/posts", Private, Option::None,        "403  200+ 200+ 403  403  404  404  200+ 403  403  401  403"),
    // ---- graph
    // Following again is a conflict (409), a pending request included.
    row("POST /users/{owner}/follow", Public, Some("{}"),         "401  422  409  200  200  404  404  409  200  200  401  200"),
    row("POST /users/{owner}/follow", Private, Some("{}"),        "401  422  409  409  200  404  404  409  200  200  401  200"),
    row("DELETE /users/{owner}/follow", Private, Option::None,    "401  422  204  204  204  404  404  204  204  204  401  204"),
    row("POST /users/{owner}/block", Public, Some("{}"),          "401  422  204  204  204  204  204  204  204  204  401  204"),
    row("DELETE /users/{owner}/block", Public, Option::None,      "401  422  204  204  204  204  204  204  204  204  401  204"),
    row("POST /users/{owner}/mute", Public, Some("{}"),           "401  422  204  204  204  404  404  204  204  204  401  204"),
    row("DELETE /users/{owner}/mute", Public, Option::None,       "401  422  204  204  204  404  404  204  204  204  401  204"),
    // ---- posts
    row("POST /posts", None, Some(r#"{"caption":"hello"}"#),     "401  201  201  201  201  201  201  201  201  201  401  201"),
    row("GET /posts?limit=100", Public, Option::None,                       "200+ 200+ 200+ 200+ 200+ 200- 200- 200+ 200+ 200+  401  200+"),
    row("GET /posts?limit=100", Private, Option::None,                      "200- 200+ 200+ 200- 200- 200- 200- 200+ 200- 200-  401  200-"),
    row("GET /posts/{post}", Public, Option::None,                "200  200  200  200  200  404  404  200  200  200  401  200"),
    row("GET /posts/{post}", Private, Option::None,               "404  200  200  404  404  404  404  200  404  404  401  404"),
    row("PATCH /posts/{post}", Public, Some(r#"{"caption":"changed"}"#),
                                                                  "401  200  403  403  403  404  404  403  403  403  401  403"),
    row("PATCH /posts/{post}", Private, Some(r#"{"caption":"changed"}"#),
                                                                  "401  200  403  404  404  404  404  403  404  404  401  404"),
    row("DELETE /posts/{post}", Public, Option::None,             "401  204  403  403  403  404  404  403  403  403  401  403"),
    row("DELETE /posts/{post}", Private, Option::None,            "401  204  403  404  404  404  404  403  404  404  401  404"),
    row("GET /posts/{post}/comments", Public, Option::None,       "200+ 200+ 200+ 200+ 200+ 404  404  200+ 200+ 200+  401  200+"),
    row("GET /posts/{post}/comments", Private, Option::None,      "404  200+ 200+ 404  404  404  404  200+ 404  404  401  404"),
    row("POST /posts/{post}/comments", Public, Some(r#"{"body":"nice"}"#),
                                                                  "401  201  201  201  201  404  404  201  201  201  401  201"),
    row("POST /posts/{post}/comments", Private, Some(r#"{"body":"nice"}"#),
                                                                  "401  201  201  404  404  404  404  201  404  404  401  404"),
    row("PUT /posts/{post}/reaction", Private, Some(r#"{"type":"love"}"#),
                                                                  "401  200  200  404  404  404  404  200  404  404  401  404"),
    row("DELETE /posts/{post}/reaction", Private, Option::None,   "401  200  200  404  404  404  404  200  404  404  401  404"),
    row("GET /posts/{post}/reactions", Private, Option::None,     "404  200  200  404  404  404  404  200  404  404  401  404"),
    row("POST /posts/{post}/save", Private, Some("{}"),           "401  204  204  404  404  404  404  204  404  404  401  404"),
    row("DELETE /posts/{post}/save", Private, Option::None,       "401  204  204  404  404  404  404  204  404  404  401  404"),
    row("GET /reaction-types", None, Option::None,                "200  200  200  200  200  200  200  200  200  200  401  200"),
    // ---- feeds
    row("GET /feed", None, Option::None,                          "401  200  200  200  200  200  200  200  200  200  401  200"),
    // Explore is for discovery: neither one's own posts nor those of accounts one follows.
    row("GET /explore?limit=100", Public, Option::None,           "200+ 200- 200- 200+ 200+ 200- 200- 200- 200+ 200+  401  200+"),
    row("GET /tags/{tag}/posts", Public, Option::None,            "200+ 200+ 200+ 200+ 200+ 200- 200- 200+ 200+ 200+  401  200+"),
    row("GET /tags/{tag}/posts", Private, Option::None,           "200- 200+ 200+ 200- 200- 200- 200- 200+ 200- 200-  401  200-"),
    // ---- comments
    row("PATCH /comments/{comment}", Public, Some(r#"{"body":"changed"}"#),
                                                                  "401  200  403  403  403  404  404  403  403  403  401  403"),
    row("PATCH /comments/{comment}", Private, Some(r#"{"body":"changed"}"#),
                                                                  "401  200  403  404  404  404  404  403  404  404  401  404"),
    row("DELETE /comments/{comment}", Private, Option::None,      "401  204  403  404  404  404  404  403  404  404  401  404"),
    row("GET /comments/{comment}/replies", Private, Option::None, "404  200  200  404  404  404  404  200  404  404  401  404"),
    row("GET /comments/{comment}/reactions", Private, Option::None,
                                                                  "404  200  200  404  404  404  404  200  404  404  401  404"),
    row("PUT /comments/{comment}/reaction", Private, Some(r#"{"type":"love"}"#),
                                                                  "401  200  200  404  404  404  404  200  404  404  401  404"),
    row("DELETE /comments/{comment}/reaction", Private, Option::None,
                                                                  "401  200  200  404  404  404  404  200  404  404  401  404"),
    // ---- media
    row("POST /push/subscriptions", None, Some(r#"{"fcm_token":"matrix-device-token"}"#), "401  201  201  201  201  201  201  201  201  201  401  201"),
    row("GET /push/subscriptions", None, Option::None,             "401  200  200  200  200  200  200  200  200  200  401  200"),
    row("DELETE /push/subscriptions/{subscription}", None, Option::None, "401  204  404  404  404  404  404  404  404  404  401  404"),
    row("GET /push/vapid-key", None, Option::None,                 "200  200  200  200  200  200  200  200  200  200  200  200"),
    row("POST /media", None, Option::None,                        "401  201  201  201  201  201  201  201  201  201  401  201"),
    row("GET /media/{media}", Unattached, Option::None,           "404  200  404  404  404  404  404  404  404  404  401  404"),
    row("GET /media/{media}", PublicPostMedia, Option::None,      "200  200  200  200  200  404  404  200  200  200  401  200"),
    row("GET /media/{media}", PrivatePostMedia, Option::None,     "404  200  200  404  404  404  404  200  404  404  401  404"),
    row("GET /media/{media}", DmMedia, Option::None,              "404  200  404  404  404  404  404  404  200  404  401  404"),
    row("PATCH /media/{media}", Unattached, Some(r#"{"alt_text":"a red door"}"#),       "401  200  404  404  404  404  404  404  404  404  401  404"),
    row("PATCH /media/{media}", PublicPostMedia, Some(r#"{"alt_text":"a red door"}"#),  "401  200  403  403  403  404  404  403  403  403  401  403"),
    row("PATCH /media/{media}", PrivatePostMedia, Some(r#"{"alt_text":"a red door"}"#), "401  200  403  404  404  404  404  403  404  404  401  404"),
    row("PATCH /media/{media}", DmMedia, Some(r#"{"alt_text":"a red door"}"#),          "401  200  404  404  404  404  404  404  403  404  401  404"),
    // Judged as anonymous (an <img> carries no token), followed through its 302 to the file.
    row("GET /media/{media}/variants/{variant}", Unattached, Option::None,       "404  404  404  404  404  404  404  404  404  404  404  404"),
    row("GET /media/{media}/variants/{variant}", PublicPostMedia, Option::None,  "200  200  200  200  200  200  200  200  200  200  200  200"),
    row("GET /media/{media}/variants/{variant}", PrivatePostMedia, Option::None, "404  404  404  404  404  404  404  404  404  404  404  404"),
    row("GET /media/{media}/variants/{variant}", DmMedia, Option::None,          "404  404  404  404  404  404  404  404  404  404  404  404"),
    row("DELETE /media/{media}", Unattached, Option::None,        "401  204  404  404  404  404  404  404  404  404  401  404"),
    row("DELETE /media/{media}", PrivatePostMedia, Option::None,  "401  409  403  404  404  404  404  403  404  404  401  404"),
    row("DELETE /media/{media}", DmMedia, Option::None,           "401  409  404  404  404  404  404  404  403  404  401  404"),
    row("FILE unsigned", Unattached, Option::None,                "404  404  404  404  404  404  404  404  404  404  404  404"),
    row("FILE unsigned", PublicPostMedia, Option::None,           "200  200  200  200  200  200  200  200  200  200  200  200"),
    row("FILE unsigned", PrivatePostMedia, Option::None,          "404  404  404  404  404  404  404  404  404  404  404  404"),
    row("FILE unsigned", DmMedia, Option::None,                   "404  404  404  404  404  404  404  404  404  404  404  404"),
    // A signed URL is a capability until it expires: whoever holds it may fetch the file.
    row("FILE signed", PrivatePostMedia, Option::None,            "200  200  200  200  200  200  200  200  200  200  200  200"),
    row("FILE signed", DmMedia, Option::None,                     "200  200  200  200  200  200  200  200  200  200  200  200"),
    row("FILE tampered", DmMedia, Option::None,                   "403  403  403  403  403  403  403  403  403  403  403  403"),
    // ---- notifications
    row("GET /notifications", None, Option::None,                 "401  200  200  200  200  200  200  200  200  200  401  200"),
    row("GET /notifications/unread-count", None, Option::None,    "401  200  200  200  200  200  200  200  200  200  401  200"),
    row("POST /notifications/read-all", None, Some("{}"),         "401  204  204  204  204  204  204  204  204  204  401  204"),
    row("POST /notifications/{notification}/read", Public, Some("{}"),
                                                                  "401  204  404  404  404  404  404  404  404  404  401  404"),
    // ---- chat
    row("GET /conversations", None, Option::None,                 "401  200  200  200  200  200  200  200  200  200  401  200"),
    row("GET /conversations/unread-count", None, Option::None,    "401  200  200  200  200  200  200  200  200  200  401  200"),
    row("POST /conversations", Public, Some(r#"{"kind":"direct","user_id":"{owner}"}"#),
                                                                  "401  422  201  201  201  404  404  201  201  201  401  201"),
    row("GET /conversations/{conv}", Group, Option::None,         "401  200  404  404  404  404  404  404  200  404  401  404"),
    row("GET /conversations/{conv}", Dm, Option::None,            "401  200  404  404  404  404  404  404  200  404  401  404"),
    row("PATCH /conversations/{conv}", Group, Some(r#"{"title":"renamed"}"#),
                                                                  "401  200  404  404  404  404  404  404  403  404  401  404"),
    row("POST /conversations/{conv}/members", Group, Some(r#"{"user_ids":["{stranger}"]}"#),
                                                                  "401  200  404  404  404  404  404  404  403  404  401  404"),
    row("DELETE /conversations/{conv}/members/{member}", Group, Option::None,
                                                                  "401  204  404  404  404  404  404  404  204  404  401  404"),
    row("GET /conversations/{conv}/messages", Dm, Option::None,   "401  200  404  404  404  404  404  404  200  404  401  404"),
    row("GET /conversations/{conv}/messages", Group, Option::None,"401  200  404  404  404  404  404  404  200  404  401  404"),
    row("POST /conversations/{conv}/messages", Group, Some(r#"{"body":"hi all"}"#),
                                                                  "401  201  404  404  404  404  404  404  201  404  401  404"),
    row("PUT /conversations/{conv}/mute", Group, Option::None,     "401  204  404  404  404  404  404  404  204  404  401  404"),
    row("PUT /conversations/{conv}/mute", Dm, Option::None,        "401  204  404  404  404  404  404  404  204  404  401  404"),
    row("DELETE /conversations/{conv}/mute", Group, Option::None,  "401  204  404  404  404  404  404  404  204  404  401  404"),
    row("POST /conversations/{conv}/read", Group, Some(r#"{"message_id":"{message}"}"#),
                                                                  "401  200  404  404  404  404  404  404  200  404  401  404"),
    row("PATCH /messages/{message}", Dm, Some(r#"{"body":"edited"}"#),
                                                                  "401  200  404  404  404  404  404  404  403  404  401  404"),
    row("DELETE /messages/{message}", Group, Option::None,        "401  204  404  404  404  404  404  404  403  404  401  404"),
    row("PUT /messages/{message}/reaction", Group, Some(r#"{"type":"love"}"#),
                                                                  "401  200  404  404  404  404  404  404  200  404  401  404"),
    row("DELETE /messages/{message}/reaction", Dm, Option::None,  "401  200  404  404  404  404  404  404  200  404  401  404"),
    // ---- consent: message requests and invitations are the asked one's alone
    row("GET /conversations/requests", Request, Option::None,    "401  200+ 200- 200- 200- 200- 200- 200- 200- 200- 401  200-"),
    row("POST /conversations/{conv}/accept", Request, Some("{}"), "401  200  404  404  404  404  404  404  404  404  401  404"),
    row("POST /conversations/{conv}/decline", Request, Some("{}"),"401  204  404  404  404  404  404  404  404  404  401  404"),
    // ---- e-mail verification (a code needs the account; the quick accounts are unverified)
    row("POST /auth/email/verify", None, Some(r#"{"code":"000000"}"#),
                                                                  "401  422  422  422  422  422  422  422  422  422  401  422"),
    row("POST /auth/email/resend", None, Some("{}"),              "401  202  202  202  202  202  202  202  202  202  401  202"),
    row("PUT /auth/email", None, Some(r#"{"email":"{unique}@example.org","password":"not the password"}"#),
                                                                  "401  422  422  422  422  422  422  422  422  422  401  422"),
    // ---- sessions
    row("GET /auth/sessions", None, Option::None,                 "401  200  200  200  200  200  200  200  200  200  401  200"),
    row("DELETE /auth/sessions/{session}", None, Option::None,    "401  204  404  404  404  404  404  404  404  404  401  404"),
    // ---- reports: anyone may report what they may see, not their own
    row("POST /reports", Public, Some(r#"{"target_type":"post","target_id":"{post}","reason":"spam"}"#),
                                                                  "401  422  201  201  201  404  404  201  201  201  401  201"),
    row("POST /reports", Private, Some(r#"{"target_type":"comment","target_id":"{comment}","reason":"hate"}"#),
                                                                  "401  422  201  404  404  404  404  201  404  404  401  404"),
    row("POST /reports", Dm, Some(r#"{"target_type":"message","target_id":"{message}","reason":"harassment"}"#),
                                                                  "401  422  404  404  404  404  404  404  201  404  401  404"),
    row("POST /reports", Private, Some(r#"{"target_type":"user","target_id":"{owner}","reason":"impersonation"}"#),
                                                                  "401  422  201  201  201  404  404  201  201  201  401  201"),
    // ---- moderation: moderators only (and roles: admins only)
    row("GET /admin/reports", None, Option::None,                 "401  403  403  403  403  403  403  403  403  403  401  200"),
    row("GET /admin/reports/count", None, Option::None,           "401  403  403  403  403  403  403  403  403  403  401  200"),
    row("GET /admin/audit", None, Option::None,                   "401  403  403  403  403  403  403  403  403  403  401  200"),
    row("POST /admin/reports/{report}/dismiss", Public, Some("{}"),"401  403  403  403  403  403  403  403  403  403  401  204"),
    row("POST /admin/reports/{report}/remove", Public, Some("{}"), "401  403  403  403  403  403  403  403  403  403  401  204"),
    row("POST /admin/reports/{report}/suspend", Public, Some("{}"),"401  403  403  403  403  403  403  403  403  403  401  204"),
    row("POST /admin/users/{owner}/suspension", Public, Some("{}"),"401  403  403  403  403  403  403  403  403  403  401  204"),
    row("DELETE /admin/users/{suspended}/suspension", None, Option::None,
                                                                  "401  403  403  403  403  403  403  403  403  403  401  204"),
    row("PUT /admin/users/{stranger}/role", None, Some(r#"{"role":"moderator"}"#),
                                                                  "401  403  403  403  403  403  403  403  403  403  401  403"),
    // ---- ops
    row("GET /health", None, Option::None,                        "200  200  200  200  200  200  200  200  200  200  200  200"),
    row("GET /ready", None, Option::None,                         "200  200  200  200  200  200  200  200  200  200  200  200"),
    row("GET /metrics", None, Option::None,                       "200  200  200  200  200  200  200  200  200  200  200  200"),
    // ---- sockets: topics (anonymous connections are refused before any topic)
    row("WS subscribe post:{post}", Public, Option::None,         "401  ok   ok   ok   ok   404  404  ok   ok   ok  401  ok"),
    row("WS subscribe post:{post}", Private, Option::None,        "401  ok   ok   404  404  404  404  ok   404  404  401  404"),
    row("WS subscribe user:{owner}", Public, Option::None,        "401  ok   ok   ok   ok   404  404  ok   ok   ok  401  ok"),
    row("WS subscribe user:{owner}", Private, Option::None,       "401  ok   ok   403  403  404  404  ok   403  403  401  403"),
    row("WS subscribe presence:{owner}", Private, Option::None,   "401  ok   ok   ok   ok   404  404  ok   ok   ok  401  ok"),
    row("WS subscribe chat:{conv}", Group, Option::None,          "401  ok   403  403  403  403  403  403  ok   403  401  403"),
    row("WS subscribe feed", None, Option::None,                  "401  ok   ok   ok   ok   ok   ok   ok   ok   ok  401  ok"),
    row("WS subscribe follower", None, Option::None,              "401  ok   ok   ok   ok   ok   ok   ok   ok   ok  401  ok"),
    row("WS subscribe notification", None, Option::None,          "401  ok   ok   ok   ok   ok   ok   ok   ok   ok  401  ok"),
    row("WS subscribe image", None, Option::None,                 "401  ok   ok   ok   ok   ok   ok   ok   ok   ok  401  ok"),
    // ---- sockets: actions
    row("WS chat.send", Group, Some(r#"{"conversation_id":"{conv}","body":"live"}"#),
                                                                  "401  ok   404  404  404  404  404  404  ok   404  401  404"),
    row("WS chat.typing", Dm, Some(r#"{"conversation_id":"{conv}"}"#),
                                                                  "401  ok   404  404  404  404  404  404  ok   404  401  404"),
    row("WS chat.read", Group, Some(r#"{"conversation_id":"{conv}","message_id":"{message}"}"#),
                                                                  "401  ok   404  404  404  404  404  404  ok   404  401  404"),
    // ---- live events, across instances: everyone may watch a third account's public post;
    // the owner's comment on it reaches them all but those blocked either way with the owner.
    row("LIVE post:{host_post}", HostPost, Option::None,          "401  seen seen seen seen -    -    seen seen seen  401  seen"),
];

crate::both_backends!(authorization_matrix);

/// The served document's operations, `METHOD /path` (paths as documented).
async fn served_operations(app: &TestApp) -> BTreeSet<String> {
    let doc: Value = app.http.get(app.api("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                let path = path.strip_prefix("/api/v1").unwrap_or(path);
                ops.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    ops
}

/// A row's REST operation in the document's spelling (`{id}`-style parameter names).
fn documented(op: &str) -> Option<String> {
    let (method, path) = op.split_once(' ')?;
    let path = path.split('?').next().unwrap();
    if matches!(method, "WS" | "FILE" | "LIVE") {
        return Option::None;
    }
    let mut out = String::new();
    let mut rest = path;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let j = rest[i..].find('}').unwrap() + i;
        let name = &rest[i + 1..j];
        out.push_str(match (path, name) {
            (_, "tag") => "{tag}",
            (_, "variant") => "{name}",
            (p, "member") if p.contains("/members/") => "{user}",
            _ => "{id}",
        });
        rest = &rest[j + 1..];
    }
    out.push_str(rest);
    Some(format!("{method} {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_operation_has_a_row() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let served = served_operations(&app).await;
    let covered: BTreeSet<String> = ROWS.iter().filter_map(|r| documented(r.op)).collect();
    let missing: Vec<&String> = served.difference(&covered).collect();
    assert!(missing.is_empty(), "operations without a row in the authorization matrix: {missing:?}");
    let stale: Vec<&String> = covered.difference(&served).collect();
    assert!(stale.is_empty(), "matrix rows for operations that are not served: {stale:?}");
    for r in ROWS {
        assert_eq!(r.expect.split_whitespace().count(), ACTORS.len(), "{}: one expectation per actor", r.op);
    }
}

/// Everyone a row's world holds.
struct World {
    owner: TestUser,
    /// A third account, neither followed nor blocked by anyone.
    host: TestUser,
    actors: Vec<Option<TestUser>>, // in ACTORS order; None for anonymous
}

impl World {
    fn user(&self, actor: &str) -> &TestUser {
        let i = ACTORS.iter().position(|a| *a == actor).unwrap();
        self.actors[i].as_ref().expect("not anonymous")
    }
}

async fn ok(app: &TestApp, method: Method, path: &str, who: &TestUser, body: Value) -> Value {
    let (s, v) = app.call(method, path, who.bearer(), Some(body)).await;
    assert!(s.is_success(), "{path}: {s} {v}");
    v
}

/// The owner (private when `private`) and one account per actor, standing as named.
async fn world(app: &TestApp, n: usize, private: bool) -> World {
    let mut users = quick_users(app, &format!("w{n}u"), ACTORS.len()).await.into_iter();
    let owner = users.next().unwrap(); // "anonymous" needs no account: the first is the owner
    let mut actors: Vec<Option<TestUser>> = vec![Option::None, Some(owner.clone())];
    actors.extend(users.by_ref().take(ACTORS.len() - 2).map(Some));
    let host = users.next().unwrap();
    let w = World { owner, host, actors };
    if private {
        make_private(app, &w.owner).await;
    }
    for a in ["follower", "muted"] {
        follow(app, w.user(a), &w.owner).await;
        if private {
            let path = format!("/users/me/follow-requests/{}/approve", w.user(a).id);
            let (s, v) = app.post(&path, w.owner.bearer(), json!({})).await;
            assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        }
    }
    if private {
        assert_eq!(follow(app, w.user("pending"), &w.owner).await, "pending");
    }
    ok(app, Method::POST, &format!("/users/{}/block", w.user("blocked").id), &w.owner, json!({})).await;
    ok(app, Method::POST, &format!("/users/{}/block", w.owner.id), w.user("blocker"), json!({})).await;
    ok(app, Method::POST, &format!("/users/{}/mute", w.user("muted").id), &w.owner, json!({})).await;
    // The owner's conversations have these two in them without a request.
    for a in ["member", "former"] {
        ok(app, Method::PUT, "/users/me/settings", w.user(a), json!({"who_can_message": "everyone"})).await;
    }
    crate::safety::grant(app, w.user("moderator"), chorus::domain::user::Role::Moderator).await;
    let (m, s) = (w.user("moderator").id.parse().unwrap(), w.user("suspended").id.parse().unwrap());
    chorus::services::moderation::suspend(&app.state, m, s, Option::None).await.unwrap();
    w
}

/// The things a row's placeholders name.
#[derive(Default, Clone)]
struct Fixture {
    values: Vec<(&'static str, String)>,
    /// The owner's view of the target media item, for file URLs.
    media_view: Value,
}

impl Fixture {
    fn set(&mut self, k: &'static str, v: impl Into<String>) {
        self.values.push((k, v.into()));
    }

    fn fill(&self, template: &str, unique: &str) -> String {
        let mut s = template.replace("{unique}", unique);
        for (k, v) in &self.values {
            s = s.replace(&format!("{{{k}}}"), v);
        }
        s
    }
}

async fn fixture(app: &TestApp, w: &World, r: &Row) -> Fixture {
    let target = r.target;
    let mut f = Fixture::default();
    f.set("owner", w.owner.id.clone());
    f.set("owner_name", w.owner.username.clone());
    f.set("pending", w.user("pending").id.clone());
    f.set("stranger", w.user("stranger").id.clone());
    f.set("member", w.user("member").id.clone());
    f.set("suspended", w.user("suspended").id.clone());
    f.set("tag", "matrixtag");
    f.set("variant", "thumb");
    if r.op.contains("{export}") {
        // The owner's export, once written.
        let e = ok(app, Method::POST, "/users/me/export", &w.owner, json!({})).await;
        let id = e["id"].as_str().unwrap().to_string();
        eventually(Duration::from_secs(10), || async {
            let (_, v) = app.get(&format!("/users/me/exports/{id}"), w.owner.bearer()).await;
            (v["status"] == "ready").then_some(())
        })
        .await;
        f.set("export", id);
    }
    if r.op.contains("{subscription}") {
        // A device of the owner's.
        let token = format!("owner-device-{}", rand::random::<u64>());
        let d = ok(app, Method::POST, "/push/subscriptions", &w.owner, json!({"fcm_token": token})).await;
        f.set("subscription", d["id"].as_str().unwrap());
    }
    if r.op.contains("{session}") {
        // The owner's session, from the store (once ended, the owner can no longer ask).
        let mut c = app.state.store.conn().await.unwrap();
        let owner: chorus::domain::Id = w.owner.id.parse().unwrap();
        let sid: chorus::domain::Id =
            chorus::run!(c.ex(), c => sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = $1")
            .bind(owner).fetch_one(c).await)
            .unwrap();
        f.set("session", sid.to_string());
    }
    match target {
        None => {}
        Public | Private => {
            let p = ok(app, Method::POST, "/posts", &w.owner, json!({"caption": "matrix #matrixtag"})).await;
            let post = p["id"].as_str().unwrap().to_string();
            let c = ok(app, Method::POST, &format!("/posts/{post}/comments"), &w.owner, json!({"body": "first"})).await;
            if r.op.contains("{report}") {
                // The follower's report on the post, for the moderators to act on.
                let body = json!({"target_type": "post", "target_id": post, "reason": "spam"});
                let rep = ok(app, Method::POST, "/reports", w.user("follower"), body).await;
                f.set("report", rep["id"].as_str().unwrap());
            }
            f.set("post", post);
            f.set("comment", c["id"].as_str().unwrap());
            if r.op.contains("{notification}") {
                // A notification of the owner's: the follower's follow (written by a job).
                let n = eventually(Duration::from_secs(10), || async {
                    let (_, page) = app.get("/notifications", w.owner.bearer()).await;
                    page["items"].as_array().and_then(|i| i.first()).map(|n| n["id"].as_str().unwrap().to_string())
                })
                .await;
                f.set("notification", n);
            }
        }
        Unattached => {
            let m = upload_ready(app, &w.owner, small_jpeg()).await;
            f.set("media", m["id"].as_str().unwrap());
            f.media_view = m;
        }
        PublicPostMedia | PrivatePostMedia => {
            let m = upload_ready(app, &w.owner, small_jpeg()).await;
            let id = m["id"].as_str().unwrap().to_string();
            ok(app, Method::POST, "/posts", &w.owner, json!({"caption": "with media", "media_ids": [id]})).await;
            let (_, view) = app.get(&format!("/media/{id}"), w.owner.bearer()).await;
            f.set("media", id);
            f.media_view = view;
        }
        DmMedia | Dm => {
            let conv = dm(app, &w.owner, w.user("member")).await;
            let body = if target == DmMedia {
                let m = upload_ready(app, &w.owner, small_jpeg()).await;
                let id = m["id"].as_str().unwrap().to_string();
                f.set("media", id.clone());
                json!({"body": "look", "media_ids": [id]})
            } else {
                json!({"body": "hello"})
            };
            let msg = ok(app, Method::POST, &format!("/conversations/{conv}/messages"), &w.owner, body).await;
            if let Some(id) = f.values.iter().find(|(k, _)| *k == "media").map(|(_, v)| v.clone()) {
                let (_, view) = app.get(&format!("/media/{id}"), w.owner.bearer()).await;
                f.media_view = view;
            }
            f.set("conv", conv);
            f.set("message", msg["id"].as_str().unwrap());
        }
        HostPost => {
            let p = ok(app, Method::POST, "/posts", &w.host, json!({"caption": "a public place"})).await;
            f.set("host_post", p["id"].as_str().unwrap());
        }
        Request => {
            let conv = dm(app, &w.host, &w.owner).await;
            ok(app, Method::POST, &format!("/conversations/{conv}/messages"), &w.host, json!({"body": "hi?"})).await;
            f.set("conv", conv);
        }
        Group => {
            let members = json!([w.user("member").id, w.user("former").id]);
            let g = ok(
                app,
                Method::POST,
                "/conversations",
                &w.owner,
                json!({"kind": "group", "title": "g", "member_ids": members}),
            )
            .await;
            let conv = g["id"].as_str().unwrap().to_string();
            let former = w.user("former");
            let path = format!("/conversations/{conv}/members/{}", former.id);
            let (s, v) = app.call(Method::DELETE, &path, former.bearer(), Option::None).await;
            assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
            let msg =
                ok(app, Method::POST, &format!("/conversations/{conv}/messages"), &w.owner, json!({"body": "hi"}))
                    .await;
            f.set("conv", conv);
            f.set("message", msg["id"].as_str().unwrap());
        }
    }
    f
}

/// The outcome of one call, in the expectation's vocabulary.
async fn outcome(
    (app, watch): (&TestApp, &TestApp),
    w: &World,
    r: &Row,
    f: &Fixture,
    who: Option<&TestUser>,
    unique: &str,
) -> String {
    let (kind, rest) = r.op.split_once(' ').unwrap();
    match kind {
        "LIVE" => {
            let Some(who) = who else { return "401".into() };
            let topic = f.fill(rest, unique);
            let Ok(mut ws) = connect(watch, who).await else { return "401".into() };
            let r = ws.request(json!({"op": "subscribe", "topic": topic})).await;
            if r["op"] != "ok" {
                return format!("sub:{}", r["error"]["code"].as_str().unwrap_or_default());
            }
            let post = f.fill("{host_post}", unique);
            let body = format!("owner says {unique}");
            ok(app, Method::POST, &format!("/posts/{post}/comments"), &w.owner, json!({"body": body})).await;
            // Then the host: everyone watching gets that one, so it marks the end of the wait.
            let marker = format!("host says {unique}");
            ok(app, Method::POST, &format!("/posts/{post}/comments"), &w.host, json!({"body": marker})).await;
            let mut seen = false;
            loop {
                let e = ws.expect_event(&topic, "comment.created").await;
                if e["data"]["body"] == body.as_str() {
                    seen = true;
                } else if e["data"]["body"] == marker.as_str() {
                    break;
                }
            }
            ws.close().await;
            if seen { "seen".into() } else { "-".into() }
        }
        "FILE" => {
            let url = variant(&f.media_view, "feed")["url"].as_str().unwrap().to_string();
            let url = match rest {
                "unsigned" => url.split('?').next().unwrap().to_string(),
                "signed" => url,
                _ => format!("{url}0"), // tampered
            };
            // The URL names the first instance; the second serves it as well (same secret).
            let url = url.replace(&app.base, &watch.base);
            app.http.get(url).send().await.unwrap().status().as_u16().to_string()
        }
        "WS" => {
            let Some(who) = who else {
                // No valid token: the connection is refused (4500) before any command.
                let url = format!("{}?access_token=not-a-token", ws_url(&watch.base));
                let refused = WsClient::try_connect_url(&url).await.is_err();
                return if refused { "401".into() } else { "connected".into() };
            };
            let Ok(mut ws) = connect(watch, who).await else { return "401".into() };
            let frame = match rest.strip_prefix("subscribe ") {
                Some(topic) => {
                    let topic = f.fill(topic, unique);
                    ws.request(json!({"op": "unsubscribe", "topic": topic})).await;
                    json!({"op": "subscribe", "topic": topic})
                }
                Option::None => {
                    let data: Value = serde_json::from_str(&f.fill(r.body.unwrap(), unique)).unwrap();
                    json!({"op": rest, "data": data})
                }
            };
            let reply = ws.request(frame).await;
            ws.close().await;
            if reply["op"] == "ok" {
                return "ok".into();
            }
            match reply["error"]["code"].as_str().unwrap_or_default() {
                "forbidden" => "403".into(),
                "not_found" => "404".into(),
                other => other.to_string(),
            }
        }
        method => {
            let path = f.fill(rest, unique);
            let url = if matches!(path.as_str(), "/health" | "/ready" | "/metrics") {
                format!("{}{path}", app.base)
            } else {
                app.api(&path)
            };
            let mut req = app.http.request(Method::from_bytes(method.as_bytes()).unwrap(), &url);
            if let Some(u) = who {
                req = req.bearer_auth(&u.token);
            }
            if r.op == "POST /media" {
                let part =
                    reqwest::multipart::Part::bytes(small_jpeg()).file_name("a.jpg").mime_str("image/jpeg").unwrap();
                req = req.multipart(reqwest::multipart::Form::new().part("file", part));
            } else if let Some(b) = r.body {
                req = req.header("content-type", "application/json").body(f.fill(b, unique));
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let mut out = status.as_u16().to_string();
            let list_row = r.expect.contains("200+") || r.expect.contains("200-");
            if list_row && status == StatusCode::OK {
                let target = list_target(r, f);
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let listed = body["items"].as_array().is_some_and(|items| {
                    items.iter().any(|i| {
                        let t = Some(target.as_str());
                        i["id"].as_str() == t || i["conversation"]["id"].as_str() == t
                    })
                });
                out.push(if listed { '+' } else { '-' });
            }
            out
        }
    }
}

/// A socket of `who`: refused (a revoked token: the suspended actor's) before any command.
async fn connect(app: &TestApp, who: &TestUser) -> Result<WsClient, String> {
    WsClient::try_connect_url(&format!("{}?access_token={}", ws_url(&app.base), who.token)).await
}

/// What a list row looks for: the owner's account in user lists, its post in post lists,
/// its comment in comment lists.
fn list_target(r: &Row, f: &Fixture) -> String {
    let key = if r.op.contains("/conversations") {
        "conv"
    } else if r.op.contains("/comments") {
        "comment"
    } else if r.op.starts_with("GET /users") && !r.op.ends_with("/posts") {
        "owner"
    } else {
        "post"
    };
    f.values.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()).unwrap_or_default()
}

async fn authorization_matrix(b: Backend) {
    let apps = TestApp::cluster_with(b, 2, |c| {
        // The matrix calls the auth endpoints from one address many times.
        c.rate_limit.auth_per_ip_per_minute = 100_000;
        c.rate_limit.auth_ip_burst = 100_000;
        c.rate_limit.auth_per_account_per_minute = 100_000;
        c.rate_limit.auth_account_burst = 100_000;
        // The real default: a stranger's conversation is a request.
        c.default_who_can_message = chorus::domain::user::WhoCanMessage::Following;
    })
    .await;
    let (app, watch) = (&apps[0], &apps[1]);
    let mut failures = Vec::new();
    for (n, r) in ROWS.iter().enumerate() {
        let private = matches!(r.target, Private | PrivatePostMedia);
        let w = world(app, n, private).await;
        let shared = fixture(app, &w, r).await;
        let expected: Vec<&str> = r.expect.split_whitespace().collect();
        let mut got = Vec::new();
        for (i, who) in w.actors.iter().enumerate() {
            // Writes meet a target of their own, so one actor's change is not the next one's.
            let reads = ["GET ", "FILE ", "WS subscribe", "LIVE "];
            let f = if reads.iter().any(|p| r.op.starts_with(p)) { shared.clone() } else { fixture(app, &w, r).await };
            got.push(outcome((app, watch), &w, r, &f, who.as_ref(), &format!("r{n}a{i}")).await);
        }
        if got.iter().map(String::as_str).ne(expected.iter().copied()) {
            failures.push(format!(
                "{} [{:?}]\n   expected {}\n   got      {}",
                r.op,
                r.target,
                expected.join(" "),
                got.join(" ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix ({} rows), actors {ACTORS:?}:\n{}",
        ROWS.len(),
        failures.join("\n")
    );
}
