//! Profiles, settings, user lists, search and suggestions.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::domain::user::{NotificationKind, Role, SocialNetwork, WhoCanMessage, bounded_text, web_url};
use crate::domain::{Id, Timestamp};
use crate::error::{AppError, AppResult, Validator};
use crate::events::{EventBatch, EventName, Topic};
use crate::pagination::{Page, PageQuery};
use crate::services::access;
use crate::state::AppState;
use crate::store::graph;
use crate::store::graph::FollowStatus;
use crate::store::users::{self as store, NotificationPref, ProfilePatch, UserRow};

/// A user as shown inside other objects and in lists.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UserSummary {
    /// Id.
    pub id: Id,
    /// Username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Avatar media id, if any (see `GET /media/{id}` for its variants).
    pub avatar_media_id: Option<Id>,
    /// The avatar's small image, relative to the server
    /// (`/api/v1/media/{avatar_media_id}/variants/thumb`, a redirect), if any.
    pub avatar_url: Option<String>,
    /// Whether only approved followers see their posts.
    pub is_private: bool,
}

/// Where a user's avatar thumbnail is loaded from (see [`UserSummary::avatar_url`]).
pub fn avatar_url(avatar: Option<Id>) -> Option<String> {
    avatar.map(|id| format!("/api/v1/media/{id}/variants/thumb"))
}

impl From<&UserRow> for UserSummary {
    fn from(u: &UserRow) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            avatar_media_id: u.avatar_media_id,
            avatar_url: avatar_url(u.avatar_media_id),
            is_private: u.is_private,
        }
    }
}

/// A public profile.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Profile {
    /// Id.
    pub id: Id,
    /// Username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Bio.
    pub bio: String,
    /// Avatar media id, if any.
    pub avatar_media_id: Option<Id>,
    /// The avatar's small image, relative to the server (see `UserSummary`), if any.
    pub avatar_url: Option<String>,
    /// Website.
    pub website: Option<String>,
    /// Links to other networks.
    pub social_links: BTreeMap<SocialNetwork, String>,
    /// Whether only approved followers see their posts.
    pub is_private: bool,
    /// Followers.
    pub follower_count: i64,
    /// Accounts followed.
    pub following_count: i64,
    /// Posts.
    pub post_count: i64,
    /// Joined.
    pub created_at: Timestamp,
    /// How the caller relates to this account (absent when anonymous or on one's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relationship: Option<Relationship>,
}

/// How the caller relates to an account.
#[derive(Clone, Copy, Debug, Default, Serialize, ToSchema)]
pub struct Relationship {
    /// The caller follows it (active).
    pub following: bool,
    /// The caller asked to follow it and waits for approval.
    pub requested: bool,
    /// It follows the caller (active).
    pub followed_by: bool,
    /// The caller muted it.
    pub muting: bool,
}

/// One notification preference.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
pub struct Pref {
    /// Shown in the app and pushed on the `notification` topic.
    pub in_app: bool,
    /// Sent by e-mail.
    pub email: bool,
    /// Pushed to the devices registered with `POST /push/subscriptions` while no socket of
    /// the account is open.
    pub push: bool,
}

/// Account settings.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Settings {
    /// Preferences per notification kind.
    pub notifications: BTreeMap<NotificationKind, Pref>,
    /// Who may message me (or add me to a group) without asking; anyone else sends a
    /// message request or an invitation (`GET /conversations/requests`).
    pub who_can_message: WhoCanMessage,
    /// Whether pushed chat messages quote the message ("dave: see you at 8"); off, they
    /// only say "New message from dave".
    pub push_previews: bool,
}

/// The caller's own account: the profile plus private fields.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Me {
    /// Public profile.
    #[serde(flatten)]
    pub profile: Profile,
    /// E-mail address.
    pub email: String,
    /// Settings.
    pub settings: Settings,
    /// `user`, `moderator` or `admin`.
    pub role: Role,
    /// Whether the e-mail address is verified (see `POST /auth/email/verify`).
    pub email_verified: bool,
}

fn profile(u: &UserRow, links: Vec<(SocialNetwork, String)>) -> Profile {
    Profile {
        id: u.id,
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        bio: u.bio.clone(),
        avatar_media_id: u.avatar_media_id,
        avatar_url: avatar_url(u.avatar_media_id),
        website: u.website.clone(),
        social_links: links.into_iter().collect(),
        is_private: u.is_private,
        follower_count: u.follower_count,
        following_count: u.following_count,
        post_count: u.post_count,
        created_at: u.created_at,
        relationship: None,
    }
}

fn settings(state: &AppState, u: &UserRow, prefs: Vec<NotificationPref>) -> Settings {
    Settings {
        notifications: prefs
            .into_iter()
            .map(|p| (p.kind, Pref { in_app: p.in_app, email: p.email, push: p.push }))
            .collect(),
        who_can_message: u.who_can_message(state.config.default_who_can_message),
        push_previews: u.push_previews,
    }
}

/// The caller's own account.
pub async fn me(state: &AppState, id: Id) -> AppResult<Me> {
    let mut c = state.store.conn().await?;
    let u = store::get(c.ex(), id).await?.ok_or(AppError::NotFound)?;
    let links = store::social_links(c.ex(), id).await?;
    let prefs = store::notification_prefs(c.ex(), id).await?;
    Ok(Me {
        profile: profile(&u, links),
        email: u.email.clone(),
        settings: settings(state, &u, prefs),
        role: u.role(),
        email_verified: u.email_verified_at.is_some(),
    })
}

/// A profile by id or `@username`, as `viewer` sees it (`404` when blocked either way).
pub async fn get_profile(state: &AppState, viewer: Option<Id>, id_or_name: &str) -> AppResult<Profile> {
    let (u, standing) = access::visible_user(state, viewer, id_or_name).await?;
    let mut c = state.store.conn().await?;
    let links = store::social_links(c.ex(), u.id).await?;
    let mut p = profile(&u, links);
    if let Some(v) = viewer.filter(|v| *v != u.id) {
        p.relationship = Some(Relationship {
            following: standing.follow == Some(FollowStatus::Active),
            requested: standing.follow == Some(FollowStatus::Pending),
            followed_by: graph::follow_status(c.ex(), u.id, v).await? == Some(graph::FollowStatus::Active),
            muting: graph::is_muted(c.ex(), v, u.id).await?,
        });
    }
    Ok(p)
}

/// Deserialises a field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// `PATCH /users/me` body: only the fields given change; `null` clears a nullable field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfile {
    /// At most 50 characters.
    pub display_name: Option<String>,
    /// At most 300 characters.
    pub bio: Option<String>,
    /// An http(s) URL, or `null` to remove.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub website: Option<Option<String>>,
    /// Private accounts show posts to approved followers only. Switching to private also
    /// ends everyone else's live `post:`/`user:` subscriptions to this account
    /// (`unsubscribed` on their sockets).
    pub is_private: Option<bool>,
    /// Per network: an http(s) URL, or `null` to remove.
    #[schema(value_type = Option<BTreeMap<SocialNetwork, Option<String>>>)]
    pub social_links: Option<BTreeMap<SocialNetwork, Option<String>>>,
}

/// Updates the caller's profile.
pub async fn update_me(state: &AppState, id: Id, req: UpdateProfile) -> AppResult<Me> {
    let mut v = Validator::new();
    let mut patch = ProfilePatch { is_private: req.is_private, ..Default::default() };
    if let Some(d) = &req.display_name {
        patch.display_name = v.check("display_name", bounded_text(d, 50));
        if patch.display_name.as_deref() == Some("") {
            v.fail("display_name", "must not be empty");
        }
    }
    if let Some(b) = &req.bio {
        patch.bio = v.check("bio", bounded_text(b, 300));
    }
    match &req.website {
        Some(Some(w)) if !w.trim().is_empty() => patch.website = v.check("website", web_url(w)).map(Some),
        Some(_) => patch.website = Some(None),
        None => {}
    }
    let mut links = Vec::new();
    for (net, url) in req.social_links.iter().flatten() {
        match url {
            Some(u) if !u.trim().is_empty() => {
                if let Some(u) = v.check(&format!("social_links.{}", net.key()), web_url(u)) {
                    links.push((*net, Some(u)));
                }
            }
            _ => links.push((*net, None)),
        }
    }
    v.finish()?;
    let mut tx = state.store.begin().await?;
    // Read only when it can matter: whether this patch switches the account to private.
    let going_private =
        req.is_private == Some(true) && !store::get(tx.ex(), id).await?.ok_or(AppError::NotFound)?.is_private;
    store::update_profile(tx.ex(), id, &patch, Timestamp::now()).await?;
    for (net, url) in &links {
        store::set_social_link(tx.ex(), id, *net, url.as_deref()).await?;
    }
    let mut events = EventBatch::new();
    if going_private {
        // Strangers watching this account's posts or profile lose them: their sessions
        // re-check every subscription that depends on this account's privacy.
        events.ephemeral(&[Topic::Audience(id)], EventName::AccessChanged, &serde_json::Value::Null);
    }
    state.commit(tx, events).await?;
    me(state, id).await
}

/// `PUT /users/me/settings` body: preferences to change, per kind; kinds not given keep
/// their current values, and within a kind an omitted channel keeps its value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSettings {
    /// Per notification kind.
    #[serde(default)]
    pub notifications: BTreeMap<NotificationKind, PrefPatch>,
    /// Who may message me (or add me to a group) without asking: `everyone`,
    /// `following` (accounts I follow) or `nobody`.
    #[serde(default)]
    pub who_can_message: Option<WhoCanMessage>,
    /// Whether pushed chat messages quote the message.
    #[serde(default)]
    pub push_previews: Option<bool>,
}

/// A partial preference.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrefPatch {
    /// In-app delivery.
    pub in_app: Option<bool>,
    /// E-mail delivery.
    pub email: Option<bool>,
    /// Push delivery.
    pub push: Option<bool>,
}

/// Updates notification settings.
pub async fn update_settings(state: &AppState, id: Id, req: UpdateSettings) -> AppResult<Settings> {
    let mut tx = state.store.begin().await?;
    let current = store::notification_prefs(tx.ex(), id).await?;
    for (kind, patch) in &req.notifications {
        let cur = current.iter().find(|p| p.kind == *kind).copied().expect("every kind has a preference");
        let next = NotificationPref {
            kind: *kind,
            in_app: patch.in_app.unwrap_or(cur.in_app),
            email: patch.email.unwrap_or(cur.email),
            push: patch.push.unwrap_or(cur.push),
        };
        store::set_notification_pref(tx.ex(), id, next).await?;
    }
    if let Some(who) = req.who_can_message {
        store::set_who_can_message(tx.ex(), id, who).await?;
    }
    if let Some(on) = req.push_previews {
        store::set_push_previews(tx.ex(), id, on).await?;
    }
    let prefs = store::notification_prefs(tx.ex(), id).await?;
    let u = store::get(tx.ex(), id).await?.ok_or(AppError::NotFound)?;
    state.commit(tx, EventBatch::new()).await?;
    Ok(settings(state, &u, prefs))
}

/// All users, newest first (minus those blocked either way with the viewer).
pub async fn list(state: &AppState, viewer: Option<Id>, q: &PageQuery) -> AppResult<Page<UserSummary>> {
    let page = q.parse::<Id>()?;
    let mut c = state.store.conn().await?;
    let rows = store::list(c.ex(), page.after, page.limit).await?;
    drop(c);
    let page = Page::from_rows(rows, page.limit, |u| u.id);
    let items = access::filter_blocked(state, viewer, page.items, |u| u.id).await?;
    Ok(Page { items: items.iter().map(UserSummary::from).collect(), next_cursor: page.next_cursor })
}

/// Users whose username or display name starts with `q` (case-insensitive), minus those
/// blocked either way with the viewer.
pub async fn search(state: &AppState, viewer: Option<Id>, q: &str, page: &PageQuery) -> AppResult<Page<UserSummary>> {
    let prefix = q.trim().trim_start_matches('@').to_lowercase();
    if prefix.is_empty() {
        return Err(AppError::field("q", "is required"));
    }
    if prefix.chars().count() > 50 {
        return Err(AppError::field("q", "must be at most 50 characters"));
    }
    let page = page.parse::<String>()?;
    let mut c = state.store.conn().await?;
    let rows = store::search_prefix(c.ex(), &prefix, page.after.as_deref(), page.limit).await?;
    drop(c);
    let page = Page::from_rows(rows, page.limit, |u| u.username.clone());
    let items = access::filter_blocked(state, viewer, page.items, |u| u.id).await?;
    Ok(Page { items: items.iter().map(UserSummary::from).collect(), next_cursor: page.next_cursor })
}

/// Accounts to follow: friends of friends first, then random accounts, never ones the
/// caller already follows, has blocked, or is blocked by.
pub async fn suggestions(state: &AppState, me: Id, limit: u32) -> AppResult<Vec<UserSummary>> {
    if limit == 0 || limit > 50 {
        return Err(AppError::field("limit", "must be between 1 and 50"));
    }
    let mut c = state.store.conn().await?;
    let fof = graph::friends_of_friends(c.ex(), me, limit).await?;
    let ids: Vec<Id> = fof.iter().map(|f| f.0).collect();
    let known = store::get_many(c.ex(), &ids).await?;
    let mut out: Vec<UserSummary> =
        ids.iter().filter_map(|id| known.iter().find(|u| u.id == *id)).map(UserSummary::from).collect();
    if out.len() < limit as usize {
        let more = store::random_unrelated(c.ex(), me, &ids, limit - out.len() as u32).await?;
        out.extend(more.iter().map(UserSummary::from));
    }
    drop(c);
    // Nobody hidden (blocked either way, suspended, deleted) is suggested.
    access::filter_blocked(state, Some(me), out, |u| u.id).await
}
