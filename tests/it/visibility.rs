//! The visibility matrix: (owner, active follower, pending requester, stranger, blocked,
//! anonymous) × (profile, post, post list, comments, reactions, followers list, global
//! lists, socket topics) for a private and for a public account.

use chorus::domain::Id;
use chorus::error::AppError;
use chorus::events::Topic;
use chorus::services::access::authorize_topic;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::posts::{follow, ids, make_private, new_post};
use crate::support::{Backend, TestApp, TestUser};

both_backends!(private_account_matrix, public_account_matrix, personal_topics_belong_to_their_owner);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Viewer {
    Owner,
    Follower,
    Requester,
    Stranger,
    Blocked,
    Anonymous,
}

const ALL: [Viewer; 6] =
    [Viewer::Owner, Viewer::Follower, Viewer::Requester, Viewer::Stranger, Viewer::Blocked, Viewer::Anonymous];

struct World {
    owner: TestUser,
    follower: TestUser,
    requester: TestUser,
    stranger: TestUser,
    blocked: TestUser,
    post: String,
}

impl World {
    fn token(&self, v: Viewer) -> Option<&str> {
        match v {
            Viewer::Owner => self.owner.bearer(),
            Viewer::Follower => self.follower.bearer(),
            Viewer::Requester => self.requester.bearer(),
            Viewer::Stranger => self.stranger.bearer(),
            Viewer::Blocked => self.blocked.bearer(),
            Viewer::Anonymous => None,
        }
    }

    fn id(&self, v: Viewer) -> Option<Id> {
        let u = match v {
            Viewer::Owner => &self.owner,
            Viewer::Follower => &self.follower,
            Viewer::Requester => &self.requester,
            Viewer::Stranger => &self.stranger,
            Viewer::Blocked => &self.blocked,
            Viewer::Anonymous => return None,
        };
        Some(u.id.parse().unwrap())
    }
}

/// An account with an approved follower, a pending requester (the request was made while
/// it was private) and a blocked user; `private` decides how it ends up.
async fn world(app: &TestApp, private: bool) -> World {
    let owner = app.register("owner").await;
    let follower = app.register("follower").await;
    let requester = app.register("requester").await;
    let stranger = app.register("stranger").await;
    let blocked = app.register("blocked").await;
    make_private(app, &owner).await;
    assert_eq!(follow(app, &follower, &owner).await, "pending");
    assert_eq!(follow(app, &requester, &owner).await, "pending");
    let (s, _) =
        app.post(&format!("/users/me/follow-requests/{}/approve", follower.id), owner.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        app.post(&format!("/users/{}/block", blocked.id), owner.bearer(), json!({})).await.0,
        StatusCode::NO_CONTENT
    );
    if !private {
        let (s, _) = app.call(Method::PATCH, "/users/me", owner.bearer(), Some(json!({"is_private": false}))).await;
        assert_eq!(s, StatusCode::OK);
    }
    let post = new_post(app, &owner, "the #matrix post").await;
    app.post(&format!("/posts/{post}/comments"), owner.bearer(), json!({"body": "owner's comment"})).await;
    app.call(Method::PUT, &format!("/posts/{post}/reaction"), owner.bearer(), Some(json!({"type": "like"}))).await;
    World { owner, follower, requester, stranger, blocked, post }
}

/// Expected statuses per viewer: (profile, post, post list, comments, reactions, followers).
fn expected(private: bool, v: Viewer) -> [StatusCode; 6] {
    use StatusCode as S;
    let all = |s: S| [s; 6];
    match (private, v) {
        (_, Viewer::Blocked) => all(S::NOT_FOUND),
        (_, Viewer::Owner | Viewer::Follower) | (false, _) => all(S::OK),
        (true, _) => [S::OK, S::NOT_FOUND, S::FORBIDDEN, S::NOT_FOUND, S::NOT_FOUND, S::FORBIDDEN],
    }
}

async fn check(app: &TestApp, w: &World, private: bool) {
    let owner = &w.owner.id;
    let post = &w.post;
    let paths = [
        format!("/users/{owner}"),
        format!("/posts/{post}"),
        format!("/users/{owner}/posts"),
        format!("/posts/{post}/comments"),
        format!("/posts/{post}/reactions"),
        format!("/users/{owner}/followers"),
    ];
    for v in ALL {
        let want = expected(private, v);
        for (path, status) in paths.iter().zip(want) {
            let (s, body) = app.get(path, w.token(v)).await;
            assert_eq!(s, status, "private={private} {v:?} GET {path}: {body}");
            if s.is_client_error() {
                let code = if s == StatusCode::NOT_FOUND { "not_found" } else { "forbidden" };
                assert_eq!(body["error"]["code"], code);
            }
        }
        let sees_post = want[1] == StatusCode::OK;
        for list in ["/posts?limit=100", "/tags/matrix/posts"] {
            let (_, page) = app.get(list, w.token(v)).await;
            assert_eq!(ids(&page).contains(post), sees_post, "private={private} {v:?} {list}");
        }
        if let Some(viewer) = w.id(v) {
            let owner_id: Id = owner.parse().unwrap();
            let post_id: Id = post.parse().unwrap();
            let topic_ok = |t: Topic| async move { authorize_topic(&app.state, viewer, &t).await };
            assert_eq!(topic_ok(Topic::Post(post_id)).await.is_ok(), sees_post, "{v:?} post topic");
            assert_eq!(topic_ok(Topic::User(owner_id)).await.is_ok(), want[2] == StatusCode::OK, "{v:?} user topic");
            assert_eq!(topic_ok(Topic::Presence(owner_id)).await.is_ok(), want[0] == StatusCode::OK, "{v:?} presence");
            if v == Viewer::Blocked {
                assert!(
                    matches!(topic_ok(Topic::Post(post_id)).await, Err(AppError::NotFound)),
                    "as if it did not exist"
                );
            }
        }
    }
    // The blocked user is also invisible to the owner.
    assert_eq!(app.get(&format!("/users/{}", w.blocked.id), w.owner.bearer()).await.0, StatusCode::NOT_FOUND);
    // A pending request grants nothing, even to write.
    if private {
        let (s, _) =
            app.post(&format!("/posts/{post}/comments"), w.requester.bearer(), json!({"body": "let me in"})).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = app
            .call(Method::PUT, &format!("/posts/{post}/reaction"), w.stranger.bearer(), Some(json!({"type": "love"})))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
}

async fn private_account_matrix(b: Backend) {
    let app = TestApp::spawn(b).await;
    let w = world(&app, true).await;
    check(&app, &w, true).await;
}

async fn public_account_matrix(b: Backend) {
    let app = TestApp::spawn(b).await;
    let w = world(&app, false).await;
    check(&app, &w, false).await;
}

async fn personal_topics_belong_to_their_owner(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let (a, bo): (Id, Id) = (ann.id.parse().unwrap(), bob.id.parse().unwrap());
    for t in [Topic::Feed(a), Topic::Follower(a), Topic::Notification(a), Topic::Image(a)] {
        assert!(authorize_topic(&app.state, a, &t).await.is_ok(), "{t}");
        assert!(matches!(authorize_topic(&app.state, bo, &t).await, Err(AppError::Forbidden(_))), "{t}");
    }
    assert!(matches!(authorize_topic(&app.state, a, &Topic::Chat(Id(1))).await, Err(AppError::Forbidden(_))));
    assert!(matches!(authorize_topic(&app.state, a, &Topic::Control(a)).await, Err(AppError::Forbidden(_))));
    assert!(authorize_topic(&app.state, a, &Topic::User(bo)).await.is_ok(), "a public account's activity");
    assert!(matches!(authorize_topic(&app.state, a, &Topic::Post(Id(42))).await, Err(AppError::NotFound)));
}
