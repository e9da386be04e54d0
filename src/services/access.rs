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
//! - a **suspended** account (a moderator's decision) is, for everyone else, as if blocked:
//!   its profile, posts, comments, messages, reactions and live topics are gone until it is
//!   unsuspended; nothing is deleted.
//!
//! Rules are pure functions of a [`Standing`] (self? blocked? follow status?) and the
//! account's privacy flag; [`Audience`] holds a viewer's standings towards many accounts at
//! once so that lists check a whole page with two queries, never one per item.

use std::collections::{HashMap, HashSet};

use crate::domain::Id;
use crate::domain::user::WhoCanMessage;
use crate::error::{AppError, AppResult};
use crate::events::Topic;
use crate::state::AppState;
use crate::store::Ex;
use crate::store::chat::{self as chat_store, ConversationRow, DIRECT, MemberRow};
use crate::store::comments::{self as comment_store, CommentRow};
use crate::store::graph::{self, FollowStatus};
use crate::store::media::{self as media_store, Holder, MediaRow};
use crate::store::posts::{self as post_store, PostRow};

use crate::store::users::{self as user_store, UserRow};

/// Where a viewer stands towards one account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Standing {
    /// The viewer is the account.
    pub is_self: bool,
    /// One of them blocked the other.
    pub blocked: bool,
    /// The viewer's follow, if any.
    pub follow: Option<FollowStatus>,
    /// The viewer muted the account (it changes what reaches them, not what they may see).
    pub muted: bool,
    /// The account is suspended.
    pub suspended: bool,
}

impl Standing {
    /// Whether the account's profile exists for the viewer.
    pub fn may_see_profile(&self) -> bool {
        self.is_self || !self.hidden()
    }

    /// Blocked either way, or suspended: gone for the viewer.
    fn hidden(&self) -> bool {
        self.blocked || self.suspended
    }

    /// Whether the account's posts belong in the viewer's home feed: their own, or an
    /// account they actively follow and are not blocked with (an unfollowed, blocking or
    /// blocked account's posts leave the feed, live and in replays alike).
    pub fn may_see_in_feed(&self) -> bool {
        self.is_self || (!self.hidden() && self.follow == Some(FollowStatus::Active))
    }

    /// Whether the account's posts belong in the viewer's home feed *as read*: as
    /// [`Standing::may_see_in_feed`], and not muted (a mute only ever hides; replays of
    /// what was delivered before the mute are not re-judged by it).
    pub fn in_home_feed(&self) -> bool {
        self.is_self || (self.may_see_in_feed() && !self.muted)
    }

    /// Whether a public account's post is for the viewer's discovery (explore): visible,
    /// neither the viewer's own nor followed (those are the home feed's), not muted.
    pub fn may_discover(&self) -> bool {
        !self.is_self && !self.hidden() && self.follow.is_none() && !self.muted
    }

    /// Whether the viewer may see the content of an account whose privacy flag is `private`.
    pub fn may_see_content(&self, private: bool) -> bool {
        self.is_self || (!self.hidden() && (!private || self.follow == Some(FollowStatus::Active)))
    }
}

/// A viewer's standings towards a set of accounts (or all of them), loaded at once.
#[derive(Clone, Debug, Default)]
pub struct Audience {
    viewer: Option<Id>,
    follows: HashMap<Id, FollowStatus>,
    blocked: HashSet<Id>,
    muted: HashSet<Id>,
    suspended: HashSet<Id>,
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
            muted: self.muted.contains(&user),
            suspended: self.suspended.contains(&user),
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
}

/// The viewer's standings towards `users` (three queries; one when anonymous).
pub async fn audience_for(state: &AppState, viewer: Option<Id>, users: &[Id]) -> AppResult<Audience> {
    if users.is_empty() {
        return Ok(Audience { viewer, ..Audience::default() });
    }
    let mut c = state.store.conn().await?;
    audience_on(c.ex(), viewer, users).await
}

/// Like [`audience_for`], on the connection or transaction given (a view being built, a
/// write checking inside its own transaction).
pub async fn audience_on(mut ex: Ex<'_>, viewer: Option<Id>, users: &[Id]) -> AppResult<Audience> {
    let mut users: Vec<Id> = users.iter().copied().filter(|u| Some(*u) != viewer).collect();
    users.sort_unstable();
    users.dedup();
    if users.is_empty() {
        return Ok(Audience { viewer, ..Audience::default() });
    }
    let suspended: HashSet<Id> = user_store::suspended_among(ex.reborrow(), &users).await?.into_iter().collect();
    let Some(v) = viewer else { return Ok(Audience { suspended, ..Audience::anonymous() }) };
    let follows = graph::follow_statuses(ex.reborrow(), v, &users).await?;
    let (mut blocked, mut muted) = (HashSet::new(), HashSet::new());
    for (id, is_mute) in graph::blocked_or_muted_among(ex, v, &users).await? {
        if is_mute {
            muted.insert(id)
        } else {
            blocked.insert(id)
        };
    }
    Ok(Audience { viewer: Some(v), follows: follows.into_iter().collect(), blocked, muted, suspended })
}

/// The viewer's standings towards every account (feeds: every follow and block).
pub async fn full_audience(state: &AppState, viewer: Id) -> AppResult<Audience> {
    let mut c = state.store.conn().await?;
    let follows = graph::all_follow_statuses(c.ex(), viewer).await?;
    let blocked = graph::block_set(c.ex(), viewer).await?;
    let muted = graph::muted_ids(c.ex(), viewer).await?;
    let suspended = user_store::suspended_ids(c.ex()).await?;
    Ok(Audience {
        suspended: suspended.into_iter().filter(|s| *s != viewer).collect(),
        viewer: Some(viewer),
        follows: follows.into_iter().collect(),
        blocked: blocked.into_iter().collect(),
        muted: muted.into_iter().collect(),
    })
}

/// The viewer's standing towards one account.
pub async fn standing(state: &AppState, viewer: Option<Id>, user: Id) -> AppResult<Standing> {
    Ok(audience_for(state, viewer, &[user]).await?.standing(user))
}

/// An account by id or `@username`, whoever may see it (`404` when unknown).
pub async fn resolve(state: &AppState, id_or_name: &str) -> AppResult<UserRow> {
    let mut c = state.store.conn().await?;
    let row = match id_or_name.strip_prefix('@') {
        Some(name) => user_store::get_by_username(c.ex(), &name.to_ascii_lowercase()).await?,
        None => match id_or_name.parse::<Id>() {
            Ok(id) => user_store::get(c.ex(), id).await?,
            Err(_) => None,
        },
    };
    row.ok_or(AppError::NotFound)
}

/// An account whose profile the viewer may see, by id or `@username`; `404` otherwise.
pub async fn visible_user(state: &AppState, viewer: Option<Id>, id_or_name: &str) -> AppResult<(UserRow, Standing)> {
    let user = resolve(state, id_or_name).await?;
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

/// A comment `me` may delete, with its post: any comment on `me`'s own post — one by an
/// account blocked either way included, which the post's author no longer sees but must be
/// able to remove — or `me`'s own comment on a post `me` sees. `404` when the comment is
/// not visible, `403` when it is someone else's on someone else's post.
pub async fn deletable_comment(state: &AppState, me: Id, id: Id) -> AppResult<(CommentRow, PostRow)> {
    let mut c = state.store.conn().await?;
    let comment = comment_store::get(c.ex(), id).await?.ok_or(AppError::NotFound)?;
    drop(c);
    let (post, _) = visible_post(state, Some(me), comment.post_id).await?;
    if post.author_id == me {
        return Ok((comment, post));
    }
    if !standing(state, Some(me), comment.author_id).await?.may_see_profile() {
        return Err(AppError::NotFound);
    }
    if comment.author_id != me {
        return Err(AppError::Forbidden("only the comment's or the post's author can delete a comment"));
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

/// Keeps the items whose account (given by `user_of`) is not suspended (a direct
/// conversation's history: blocks leave it readable, a suspension does not).
pub async fn filter_suspended<T>(state: &AppState, items: Vec<T>, user_of: impl Fn(&T) -> Id) -> AppResult<Vec<T>> {
    if items.is_empty() {
        return Ok(items);
    }
    let users: Vec<Id> = items.iter().map(&user_of).collect();
    let mut c = state.store.conn().await?;
    let suspended: HashSet<Id> = user_store::suspended_among(c.ex(), &users).await?.into_iter().collect();
    Ok(items.into_iter().filter(|i| !suspended.contains(&user_of(i))).collect())
}

/// Keeps the items whose account (given by `user_of`) the viewer's block list allows (and
/// that is not suspended).
pub async fn filter_blocked<T>(
    state: &AppState,
    viewer: Option<Id>,
    items: Vec<T>,
    user_of: impl Fn(&T) -> Id,
) -> AppResult<Vec<T>> {
    if items.is_empty() {
        return Ok(items);
    }
    let users: Vec<Id> = items.iter().map(&user_of).collect();
    let audience = audience_for(state, viewer, &users).await?;
    Ok(items.into_iter().filter(|i| audience.may_see_profile(user_of(i))).collect())
}

/// Whether `viewer` may see media item `m`. Media follow what holds them: an unattached
/// upload (or one still processing) is its uploader's; an avatar is everyone's; a post's
/// media are visible exactly when the post is; a message's media to the conversation's
/// current members. Anything else is `404`, as if the item did not exist (ids are dense
/// and time-ordered, so a `403` would confirm a guess).
pub async fn visible_media(state: &AppState, viewer: Option<Id>, m: &MediaRow) -> AppResult<MediaAudience> {
    if viewer == Some(m.owner_id) {
        return Ok(MediaAudience::Owner);
    }
    if m.status != "ready" {
        return Err(AppError::NotFound);
    }
    match m.attached_to.as_deref() {
        Some("avatar") => return Ok(MediaAudience::Public),
        None => return Err(AppError::NotFound),
        Some(_) => {}
    }
    let mut c = state.store.conn().await?;
    let holder = media_store::holder(c.ex(), m.id).await?;
    match holder {
        Holder::Post(p) => {
            drop(c);
            let (_, author) = visible_post(state, viewer, p).await?;
            Ok(post_media_audience(author.is_private))
        }
        Holder::Conversation(conv) => {
            let v = viewer.ok_or(AppError::NotFound)?;
            chat_store::member(c.ex(), conv, v).await?.ok_or(AppError::NotFound)?;
            Ok(MediaAudience::Restricted)
        }
        Holder::None => Err(AppError::NotFound),
    }
}

/// The audience of a post's media, for its URLs: everyone's exactly when the post is (its
/// author is public), some people's otherwise.
pub fn post_media_audience(author_private: bool) -> MediaAudience {
    if author_private { MediaAudience::Restricted } else { MediaAudience::Public }
}

/// The audience of a chat message's media: the conversation's members only.
pub const MESSAGE_MEDIA: MediaAudience = MediaAudience::Restricted;

/// Who may see a media item, as far as its URLs are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaAudience {
    /// The uploader looking at their own item.
    Owner,
    /// Anyone (avatars, posts of public accounts): long-lived cacheable URLs.
    Public,
    /// Some people only (a private account's post, a conversation's message).
    Restricted,
}

/// Whether `me` may act in conversation `conv` — send, edit, react, type, move read marks:
/// a member (`404` otherwise, as if it did not exist), and in a direct conversation not
/// blocked either way with the other member (`403`: the conversation stays readable, its
/// history is the member's own, but a block ends every interaction in it). Runs on the
/// connection or transaction it is given, so a write checks inside its own transaction.
pub async fn act_in_conversation(mut ex: Ex<'_>, me: Id, conv: &ConversationRow) -> AppResult<MemberRow> {
    let m = member_of(ex.reborrow(), me, conv.id).await?;
    if conv.kind == DIRECT {
        // The other party may be a member, or asked and not a member yet (a request).
        let mut others: Vec<Id> = chat_store::members_of(ex.reborrow(), &[conv.id])
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .filter(|u| *u != me)
            .collect();
        others.extend(chat_store::requested_in(ex.reborrow(), &[conv.id]).await?.into_iter().map(|(_, u)| u));
        direct_open(ex, me, conv, &others).await?;
    }
    Ok(m)
}

/// `me`'s membership of conversation `conv`: what a member may do to their own side of it
/// (read it, mute it, leave it) needs nothing more. `404` for anyone else, as if it did
/// not exist (a former member included).
pub async fn member_of(ex: Ex<'_>, me: Id, conv: Id) -> AppResult<MemberRow> {
    chat_store::member(ex, conv, me).await?.ok_or(AppError::NotFound)
}

/// `404` when `me` and `other` are blocked either way (a blocked account is invisible, as
/// if unknown): checked again inside a write's transaction, since a block may have landed
/// after the visibility check that found `other`.
pub async fn not_blocked(ex: Ex<'_>, me: Id, other: Id) -> AppResult<()> {
    if graph::blocked_among(ex, me, &[other]).await?.is_empty() { Ok(()) } else { Err(AppError::NotFound) }
}

/// Whether every one of `ids` may be put in a group by `me`: an existing account with no
/// block either way (a blocked account reads as unknown). The first that may not, or
/// `None`. Two queries for the whole list, in the transaction that adds them.
pub async fn first_unaddable(mut ex: Ex<'_>, me: Id, ids: &[Id]) -> AppResult<Option<Id>> {
    let found: HashSet<Id> = user_store::get_many(ex.reborrow(), ids).await?.iter().map(|u| u.id).collect();
    let blocked: HashSet<Id> = graph::blocked_among(ex, me, ids).await?.into_iter().collect();
    Ok(ids.iter().copied().find(|i| !found.contains(i) || blocked.contains(i)))
}

/// Whether `me` may write (post, comment, message, follow): when the server requires
/// verified e-mail (`auth.require_verified_email`), an unverified account may only read
/// (`403 email_unverified`).
pub async fn may_write(state: &AppState, me: Id) -> AppResult<()> {
    if !state.config.verification_required() {
        return Ok(());
    }
    let mut c = state.store.conn().await?;
    let u = user_store::get(c.ex(), me).await?.ok_or(AppError::NotFound)?;
    if u.email_verified_at.is_none() {
        return Err(AppError::EmailUnverified);
    }
    Ok(())
}

/// Of `users`, those who let `from` message them (or add them to a group) without asking:
/// their `who_can_message` is `everyone`, or `following` and they follow `from`. The rest
/// get a message request or a group invitation instead. Two queries, in the caller's
/// transaction.
pub async fn consenting(mut ex: Ex<'_>, default: WhoCanMessage, from: Id, users: &[Id]) -> AppResult<HashSet<Id>> {
    let rows = user_store::get_many(ex.reborrow(), users).await?;
    let following: HashSet<Id> = graph::followers_among(ex, from, users).await?.into_iter().collect();
    Ok(rows
        .iter()
        .filter(|u| match u.who_can_message(default) {
            WhoCanMessage::Everyone => true,
            WhoCanMessage::Following => following.contains(&u.id),
            WhoCanMessage::Nobody => false,
        })
        .map(|u| u.id)
        .collect())
}

/// In a direct conversation whose other member is among `others`, a block either way
/// refuses every action (`403`). Groups are not affected: there a block filters the live
/// events and mentions between the two, per recipient, and refuses adding each other.
pub async fn direct_open(ex: Ex<'_>, me: Id, conv: &ConversationRow, others: &[Id]) -> AppResult<()> {
    if conv.kind == DIRECT && !graph::blocked_among(ex, me, others).await?.is_empty() {
        return Err(AppError::Forbidden("you cannot message this user"));
    }
    Ok(())
}

/// Whether `recipient` may hear of `actor`'s action (a notification, a message's e-mail):
/// not their own, no block either way with the actor or the post's author, the actor not
/// muted by the recipient, and — for something on a post — the post still visible to them.
/// Runs in the caller's transaction (the notify job's), two queries and a user read.
pub async fn may_notify(mut ex: Ex<'_>, recipient: Id, actor: Id, post_author: Option<Id>) -> AppResult<bool> {
    if recipient == actor {
        return Ok(false);
    }
    let users: Vec<Id> = std::iter::once(actor).chain(post_author).collect();
    let audience = audience_on(ex.reborrow(), Some(recipient), &users).await?;
    let s = audience.standing(actor);
    if s.blocked || s.muted || s.suspended {
        return Ok(false);
    }
    if let Some(author) = post_author.filter(|a| *a != recipient) {
        let Some(a) = user_store::get(ex, author).await? else { return Ok(false) };
        if !audience.may_see_content(author, a.is_private) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Of `followers` (the active followers of `author`), those whose `feed` topic gets
/// `author`'s posts live: all but those who muted `author`. Runs on the fan-out's connection.
pub async fn live_feed_recipients(ex: Ex<'_>, author: Id, followers: &[Id]) -> AppResult<Vec<Id>> {
    let muters: HashSet<Id> = graph::muters_of(ex, author).await?.into_iter().collect();
    Ok(followers.iter().copied().filter(|f| !muters.contains(f)).collect())
}

/// The accounts blocked either way with `user`: the hub's per-recipient filter of live
/// events ([`crate::realtime::hub::BlockSet`]).
pub async fn blocked_with(state: &AppState, user: Id) -> AppResult<HashSet<Id>> {
    let mut c = state.store.conn().await?;
    Ok(graph::block_set(c.ex(), user).await?.into_iter().collect())
}

/// Of the actors of stored events on `topic` (a durable replay to `reader`), those whose
/// events the reader may still see: on the home feed, accounts whose posts
/// [`Standing::may_see_in_feed`]; elsewhere, accounts not blocked either way. Events with
/// no actor are always replayable.
pub async fn replayable(
    state: &AppState,
    reader: Id,
    topic: &Topic,
    rows: &[crate::store::events::EventRow],
) -> AppResult<HashSet<Id>> {
    let actors: Vec<Id> = rows.iter().filter_map(|r| r.actor_id).collect();
    if actors.is_empty() {
        return Ok(HashSet::new());
    }
    let audience = audience_for(state, Some(reader), &actors).await?;
    let feed = matches!(topic, Topic::Feed(_));
    Ok(actors
        .into_iter()
        .filter(|a| {
            let s = audience.standing(*a);
            if feed { s.may_see_in_feed() } else { s.may_see_profile() }
        })
        .collect())
}

/// A conversation topic refused to a non-member.
fn not_a_member() -> AppError {
    AppError::Forbidden("not a member of this conversation")
}

/// Whether a conversation topic may still be watched by a user whose conversations are
/// `memberships` (one read for all of a session's conversations, instead of one
/// [`authorize_topic`] each); the same answer as [`authorize_topic`] gives.
pub fn conversation_allowed(memberships: &HashSet<Topic>, topic: &Topic) -> AppResult<()> {
    if memberships.contains(topic) { Ok(()) } else { Err(not_a_member()) }
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
            let mut conn = state.store.conn().await?;
            if chat_store::member(conn.ex(), c, viewer).await?.is_some() { Ok(None) } else { Err(not_a_member()) }
        }
        Topic::Control(_) | Topic::Audience(_) => Err(AppError::Forbidden("not a subscribable topic")),
    }
}
