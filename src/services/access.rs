//! Who may see what — the one place that decides. Every REST read path and every socket
//! subscription asks here; nothing else in Chorus encodes a visibility rule.
//!
//! # The rules
//! Between a viewer (possibly anonymous) and an account:
//! - **blocked either way** → the account, its profile, posts, comments, reactions and lists
//!   do not exist for the viewer: `404`, exactly as for an unknown id;
//! - otherwise the **profile** is visible to everyone;
//! - the account's **content** (posts, their comments and reactions, follower and following
//!   lists, its `user:` topic) is visible to the account itself, to everyone when the
//!   account is public, and only to its *active* followers when it is private (a pending
//!   request grants nothing). A single post one may not see is a `404`; a list of a private
//!   account one may not see is a `403` ("this account is private"), since the account
//!   itself is visible.
//! - a **comment** is visible when its post is and its author is not blocked either way.
//!
//! Rules are pure functions of a [`Standing`] (self? blocked? follow status?) and the
//! account's privacy flag; [`Audience`] holds a viewer's standings towards many accounts at
//! once so that lists check a whole page with two queries, never one per item.

use std::collections::{HashMap, HashSet};

use crate::domain::Id;
use crate::error::{AppError, AppResult};
use crate::events::Topic;
use crate::services::users as user_svc;
use crate::state::AppState;
use crate::store::comments::{self as comment_store, CommentRow};
use crate::store::graph::{self, ACTIVE};
use crate::store::posts::{self as post_store, PostRow};

use crate::store::users::{self as user_store, UserRow};

/// The viewer's follow towards an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    /// Approved (or the account is public).
    Active,
    /// Requested, waiting for a private account's approval.
    Pending,
}

/// Where a viewer stands towards one account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Standing {
    /// The viewer is the account.
    pub is_self: bool,
    /// One of them blocked the other.
    pub blocked: bool,
    /// The viewer's follow, if any.
    pub follow: Option<Follow>,
}

impl Standing {
    /// Whether the account's profile exists for the viewer.
    pub fn may_see_profile(&self) -> bool {
        self.is_self || !self.blocked
    }

    /// Whether the viewer may see the content of an account whose privacy flag is `private`.
    pub fn may_see_content(&self, private: bool) -> bool {
        self.is_self || (!self.blocked && (!private || self.follow == Some(Follow::Active)))
    }
}

/// A viewer's standings towards a set of accounts (or all of them), loaded at once.
#[derive(Clone, Debug, Default)]
pub struct Audience {
    viewer: Option<Id>,
    follows: HashMap<Id, Follow>,
    blocked: HashSet<Id>,
}

impl Audience {
    /// Nobody logged in.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// The viewer.
    pub fn viewer(&self) -> Option<Id> {
        self.viewer
    }

    /// The viewer's standing towards `user` (must be among the loaded accounts, or the
    /// audience must have been loaded in full).
    pub fn standing(&self, user: Id) -> Standing {
        Standing {
            is_self: self.viewer == Some(user),
            blocked: self.blocked.contains(&user),
            follow: self.follows.get(&user).copied(),
        }
    }

    /// Whether `user`'s content is visible, `private` being their privacy flag.
    pub fn may_see_content(&self, user: Id, private: bool) -> bool {
        self.standing(user).may_see_content(private)
    }

    /// Whether `user`'s profile is visible.
    pub fn may_see_profile(&self, user: Id) -> bool {
        self.standing(user).may_see_profile()
    }

    /// Accounts the viewer actively follows (loaded ones).
    pub fn following(&self) -> impl Iterator<Item = Id> + '_ {
        self.follows.iter().filter(|(_, f)| **f == Follow::Active).map(|(id, _)| *id)
    }

    /// Whether the viewer has any follow (active or pending) towards `user`.
    pub fn has_follow(&self, user: Id) -> bool {
        self.follows.contains_key(&user)
    }
}

fn follow_of(status: &str) -> Follow {
    if status == ACTIVE { Follow::Active } else { Follow::Pending }
}

/// The viewer's standings towards `users` (two queries; none when anonymous).
pub async fn audience_for(state: &AppState, viewer: Option<Id>, users: &[Id]) -> AppResult<Audience> {
    let Some(v) = viewer else { return Ok(Audience::anonymous()) };
    let mut users: Vec<Id> = users.iter().copied().filter(|u| *u != v).collect();
    users.sort_unstable();
    users.dedup();
    let mut c = state.store.conn().await?;
    let follows = graph::follow_statuses(c.ex(), v, &users).await?;
    let blocked = graph::blocked_among(c.ex(), v, &users).await?;
    Ok(Audience {
        viewer: Some(v),
        follows: follows.into_iter().map(|(id, s)| (id, follow_of(&s))).collect(),
        blocked: blocked.into_iter().collect(),
    })
}

/// The viewer's standings towards every account (feeds: every follow and block).
pub async fn full_audience(state: &AppState, viewer: Id) -> AppResult<Audience> {
    let mut c = state.store.conn().await?;
    let follows = graph::all_follow_statuses(c.ex(), viewer).await?;
    let blocked = graph::block_set(c.ex(), viewer).await?;
    Ok(Audience {
        viewer: Some(viewer),
        follows: follows.into_iter().map(|(id, s)| (id, follow_of(&s))).collect(),
        blocked: blocked.into_iter().collect(),
    })
}

/// The viewer's standing towards one account.
pub async fn standing(state: &AppState, viewer: Option<Id>, user: Id) -> AppResult<Standing> {
    Ok(audience_for(state, viewer, &[user]).await?.standing(user))
}

/// An account whose profile the viewer may see, by id or `@username`; `404` otherwise.
pub async fn visible_user(state: &AppState, viewer: Option<Id>, id_or_name: &str) -> AppResult<(UserRow, Standing)> {
    let user = user_svc::resolve(state, id_or_name).await?;
    let s = standing(state, viewer, user.id).await?;
    if !s.may_see_profile() {
        return Err(AppError::NotFound);
    }
    Ok((user, s))
}

/// An account whose *content* the viewer may see (its lists, its posts): `404` when blocked
/// or unknown, `403` when private and not followed.
pub async fn content_owner(state: &AppState, viewer: Option<Id>, id_or_name: &str) -> AppResult<UserRow> {
    let (user, s) = visible_user(state, viewer, id_or_name).await?;
    if !s.may_see_content(user.is_private) {
        return Err(AppError::Forbidden("this account is private"));
    }
    Ok(user)
}

/// A post the viewer may see, with its author; `404` otherwise (as if it did not exist).
pub async fn visible_post(state: &AppState, viewer: Option<Id>, id: Id) -> AppResult<(PostRow, UserRow)> {
    let mut c = state.store.conn().await?;
    let post = post_store::get(c.ex(), id).await?.ok_or(AppError::NotFound)?;
    let author = user_store::get(c.ex(), post.author_id).await?.ok_or(AppError::NotFound)?;
    drop(c);
    if !standing(state, viewer, author.id).await?.may_see_content(author.is_private) {
        return Err(AppError::NotFound);
    }
    Ok((post, author))
}

/// A comment the viewer may see (tombstones included), with its post; `404` otherwise.
pub async fn visible_comment(state: &AppState, viewer: Option<Id>, id: Id) -> AppResult<(CommentRow, PostRow)> {
    let mut c = state.store.conn().await?;
    let comment = comment_store::get(c.ex(), id).await?.ok_or(AppError::NotFound)?;
    drop(c);
    let (post, _) = visible_post(state, viewer, comment.post_id).await?;
    if !standing(state, viewer, comment.author_id).await?.may_see_profile() {
        return Err(AppError::NotFound);
    }
    Ok((comment, post))
}

/// Keeps the items (posts, or anything written by an account) whose author's content the
/// viewer may see, in order: three queries for the whole list.
pub async fn filter_visible<T>(
    state: &AppState,
    viewer: Option<Id>,
    items: Vec<T>,
    author_of: impl Fn(&T) -> Id,
) -> AppResult<Vec<T>> {
    if items.is_empty() {
        return Ok(items);
    }
    let mut authors: Vec<Id> = items.iter().map(&author_of).collect();
    authors.sort_unstable();
    authors.dedup();
    let mut c = state.store.conn().await?;
    let private: HashMap<Id, bool> =
        user_store::get_many(c.ex(), &authors).await?.into_iter().map(|u| (u.id, u.is_private)).collect();
    drop(c);
    let audience = audience_for(state, viewer, &authors).await?;
    Ok(items
        .into_iter()
        .filter(|i| {
            let a = author_of(i);
            private.get(&a).is_some_and(|p| audience.may_see_content(a, *p))
        })
        .collect())
}

/// Keeps the items whose account (given by `user_of`) the viewer's block list allows.
pub async fn filter_blocked<T>(
    state: &AppState,
    viewer: Option<Id>,
    items: Vec<T>,
    user_of: impl Fn(&T) -> Id,
) -> AppResult<Vec<T>> {
    if viewer.is_none() || items.is_empty() {
        return Ok(items);
    }
    let users: Vec<Id> = items.iter().map(&user_of).collect();
    let audience = audience_for(state, viewer, &users).await?;
    Ok(items.into_iter().filter(|i| audience.may_see_profile(user_of(i))).collect())
}

/// May `viewer` subscribe to `topic`? The socket doors call this for every subscription,
/// mirroring the REST reads: personal topics are the owner's only, `post:` follows the
/// post's visibility, `user:` the account's content, `presence:` its profile. Returns the
/// account whose privacy the answer depends on (the post's author, the `user:` account):
/// the session watches that account's [`Topic::Audience`] to hear when it goes private.
pub async fn authorize_topic(state: &AppState, viewer: Id, topic: &Topic) -> AppResult<Option<Id>> {
    match *topic {
        Topic::Feed(u) | Topic::Follower(u) | Topic::Notification(u) | Topic::Image(u) => {
            if u == viewer {
                Ok(None)
            } else {
                Err(AppError::Forbidden("this topic belongs to another user"))
            }
        }
        Topic::Post(id) => visible_post(state, Some(viewer), id).await.map(|(_, author)| Some(author.id)),
        Topic::User(id) => content_owner(state, Some(viewer), &id.to_string()).await.map(|u| Some(u.id)),
        Topic::Presence(id) => visible_user(state, Some(viewer), &id.to_string()).await.map(|_| None),
        Topic::Chat(c) => {
            if crate::services::chat::is_member(state, viewer, c).await? {
                Ok(None)
            } else {
                Err(AppError::Forbidden("not a member of this conversation"))
            }
        }
        Topic::Control(_) | Topic::Audience(_) => Err(AppError::Forbidden("not a subscribable topic")),
    }
}
