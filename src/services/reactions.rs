//! Reactions on posts and comments: one per user per target, any *active* type from the
//! `reaction_types` table. `PUT` sets or switches, `DELETE` removes; counts per type are
//! kept exact under concurrency (see `store::reactions` for the lock order). A disabled
//! type can no longer be chosen, but reactions already made with it stay counted.
//!
//! The set of types is data: `chorus reactions list|add|disable` changes it without a
//! release ([`cli_list`], [`cli_add`], [`cli_disable`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{Id, Timestamp};
use crate::error::{AppError, AppResult};
use crate::events::{EventBatch, EventName, Topic};
use crate::pagination::{Page, PageQuery};
use crate::ratelimit::Write;
use crate::services::access;
use crate::services::notifications::{self, Cause};
use crate::services::users::UserSummary;
use crate::state::AppState;
use crate::store::chat as chat_store;
use crate::store::comments as comment_store;
use crate::store::posts::{self as post_store, RowLock};
use crate::store::reactions::{self as store, Target};
use crate::store::{Conn, Store, StoreResult, users as user_store};

pub use crate::store::reactions::Counts;

/// A reaction type that can be chosen.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReactionType {
    /// Key used in requests and counts (`love`).
    pub key: String,
    /// Emoji.
    pub emoji: String,
    /// Label.
    pub label: String,
    /// Display order.
    pub position: i32,
}

/// `PUT …/reaction` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetReaction {
    /// An active reaction type key (see `GET /reaction-types`).
    #[serde(rename = "type")]
    pub kind: String,
}

/// A target's reactions after a change.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReactionSummary {
    /// Counts by type, zero counts omitted.
    pub reaction_counts: Counts,
    /// The caller's reaction, if any.
    pub my_reaction: Option<String>,
}

/// Someone who reacted.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Reactor {
    /// Who.
    pub user: UserSummary,
    /// Which type.
    #[serde(rename = "type")]
    pub kind: String,
    /// When (the last switch).
    pub reacted_at: Timestamp,
}

/// `reaction.changed` data, on `post:{post_id}`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReactionChanged {
    /// `post` or `comment`.
    pub target_kind: &'static str,
    /// The post or comment.
    pub target_id: Id,
    /// The post (itself, or the comment's).
    pub post_id: Id,
    /// Counts after the change.
    pub reaction_counts: Counts,
}

/// Active types, in display order.
pub async fn active_types(state: &AppState) -> AppResult<Vec<ReactionType>> {
    let mut c = state.store.conn().await?;
    Ok(store::types(c.ex())
        .await?
        .into_iter()
        .filter(|t| t.active)
        .map(|t| ReactionType { key: t.key, emoji: t.emoji, label: t.label, position: t.position })
        .collect())
}

/// Counts and the viewer's reaction for each of `ids` (two queries).
pub async fn counts_and_mine(
    c: &mut Conn,
    target: Target,
    ids: &[Id],
    viewer: Option<Id>,
) -> StoreResult<(HashMap<Id, Counts>, HashMap<Id, String>)> {
    let mut counts: HashMap<Id, Counts> = HashMap::new();
    for (id, kind, n) in store::counts_of(c.ex(), target, ids).await? {
        counts.entry(id).or_default().insert(kind, n);
    }
    let mine = match viewer {
        Some(v) => store::mine_of(c.ex(), target, ids, v).await?.into_iter().collect(),
        None => HashMap::new(),
    };
    Ok((counts, mine))
}

/// Sets (`Some`) or removes (`None`) the caller's reaction on a post.
pub async fn react_to_post(
    state: &AppState,
    me: Id,
    post: Id,
    kind: Option<SetReaction>,
) -> AppResult<ReactionSummary> {
    access::visible_post(state, Some(me), post).await?;
    let kind = validate(state, kind).await?;
    change(state, me, Target::Post, post, Scope::Post(post), kind).await
}

/// Sets (`Some`) or removes (`None`) the caller's reaction on a comment.
pub async fn react_to_comment(
    state: &AppState,
    me: Id,
    comment: Id,
    kind: Option<SetReaction>,
) -> AppResult<ReactionSummary> {
    let (c, _) = access::visible_comment(state, Some(me), comment).await?;
    if c.deleted {
        return Err(AppError::NotFound);
    }
    let kind = validate(state, kind).await?;
    change(state, me, Target::Comment, comment, Scope::Post(c.post_id), kind).await
}

/// Sets (`Some`) or removes (`None`) the caller's reaction on a chat message of one of
/// their conversations.
pub async fn react_to_message(
    state: &AppState,
    me: Id,
    message: Id,
    kind: Option<SetReaction>,
) -> AppResult<ReactionSummary> {
    let conversation = crate::services::chat::reactable(state, me, message).await?;
    let kind = validate(state, kind).await?;
    change(state, me, Target::Message, message, Scope::Chat(conversation), kind).await
}

/// Where a reaction change is announced.
#[derive(Clone, Copy)]
enum Scope {
    /// `reaction.changed` on `post:{id}`.
    Post(Id),
    /// `message.reaction` on `chat:{id}` (durable).
    Chat(Id),
}

async fn validate(state: &AppState, kind: Option<SetReaction>) -> AppResult<Option<String>> {
    let Some(SetReaction { kind }) = kind else { return Ok(None) };
    let key = kind.trim().to_ascii_lowercase();
    let mut c = state.store.conn().await?;
    match store::get_type(c.ex(), &key).await? {
        Some(t) if t.active => Ok(Some(t.key)),
        Some(_) => Err(AppError::field("type", "this reaction type is no longer available")),
        None => Err(AppError::field("type", "unknown reaction type")),
    }
}

/// One reaction change in one transaction, retried when a concurrent first reaction of the
/// same user on the same target won the insert.
async fn change(
    state: &AppState,
    me: Id,
    target: Target,
    id: Id,
    scope: Scope,
    new: Option<String>,
) -> AppResult<ReactionSummary> {
    // Setting or switching a reaction is a write; taking one back is never refused.
    if new.is_some() {
        state.limits.write(Write::Reaction, me).await?;
    }
    for _ in 0..3 {
        let mut tx = state.store.begin().await?;
        // 1. The target must stay while we work (and must still be there). Its author is
        // whose reaction notification a removed reaction leaves.
        let author = match target {
            Target::Post => post_store::lock(tx.ex(), id, RowLock::KeyShare).await?.map(|p| p.author_id),
            Target::Comment => {
                comment_store::lock(tx.ex(), id, RowLock::KeyShare).await?.filter(|c| !c.deleted).map(|c| c.author_id)
            }
            Target::Message => chat_store::get_message(tx.ex(), id, Some(RowLock::KeyShare))
                .await?
                .filter(|m| !m.deleted)
                .map(|m| m.sender_id),
        };
        let Some(author) = author else { return Err(AppError::NotFound) };
        if let Scope::Chat(conv) = scope {
            // Checked again in the transaction: a block may have landed since `reactable`.
            let conv = chat_store::get_conversation(tx.ex(), conv, None).await?.ok_or(AppError::NotFound)?;
            crate::services::access::act_in_conversation(tx.ex(), me, &conv).await?;
        }
        // 2–3. The user's reaction row, then the change.
        let now = Timestamp::now();
        let changes: Vec<(String, i64)> = match new.as_deref() {
            Some(kind) => match store::current_for_update(tx.ex(), target, id, me).await? {
                Some(old) if old == kind => Vec::new(),
                Some(old) => {
                    store::switch(tx.ex(), target, id, me, kind, now).await?;
                    vec![(old, -1), (kind.to_string(), 1)]
                }
                None => {
                    if !store::insert(tx.ex(), target, id, me, kind, now).await? {
                        continue; // a concurrent request of ours inserted first: start over
                    }
                    // A first reaction on a post or comment notifies its author (a switch of
                    // type does not).
                    if target != Target::Message {
                        let cause = Cause::Reacted { actor: me, comment: target == Target::Comment, id };
                        notifications::enqueue(state, &mut tx, cause).await?;
                    }
                    vec![(kind.to_string(), 1)]
                }
            },
            None => match store::delete(tx.ex(), target, id, me).await? {
                Some(old) => {
                    if target != Target::Message {
                        notifications::reaction_removed(&mut tx, author, target == Target::Comment, id, me).await?;
                    }
                    vec![(old, -1)]
                }
                None => Vec::new(),
            },
        };
        // 4–5. Counts in key order, then the total.
        let refs: Vec<(&str, i64)> = changes.iter().map(|(k, d)| (k.as_str(), *d)).collect();
        store::apply_counts(tx.ex(), target, id, &refs).await?;
        let mut counts = Counts::new();
        for (_, kind, n) in store::counts_of(tx.ex(), target, &[id]).await? {
            counts.insert(kind, n);
        }
        let mut events = EventBatch::by(me);
        if !changes.is_empty() {
            match scope {
                Scope::Post(post) => {
                    let data = ReactionChanged {
                        target_kind: target.kind(),
                        target_id: id,
                        post_id: post,
                        reaction_counts: counts.clone(),
                    };
                    events.ephemeral(&[Topic::Post(post)], EventName::ReactionChanged, &data);
                }
                Scope::Chat(conv) => {
                    crate::services::chat::reaction_event(&mut tx, &mut events, conv, id, &counts).await?
                }
            }
        }
        state.commit(tx, events).await?;
        return Ok(ReactionSummary { reaction_counts: counts, my_reaction: new });
    }
    Err(AppError::conflict("the reaction changed concurrently; try again"))
}

/// `?type=&cursor=&limit=` of a reactor list.
pub struct ReactorQuery {
    /// Only this type.
    pub kind: Option<String>,
    /// Page.
    pub page: PageQuery,
}

/// Who reacted to a post, newest first.
pub async fn post_reactors(
    state: &AppState,
    viewer: Option<Id>,
    post: Id,
    q: ReactorQuery,
) -> AppResult<Page<Reactor>> {
    access::visible_post(state, viewer, post).await?;
    reactors(state, viewer, Target::Post, post, q).await
}

/// Who reacted to a comment, newest first.
pub async fn comment_reactors(
    state: &AppState,
    viewer: Option<Id>,
    comment: Id,
    q: ReactorQuery,
) -> AppResult<Page<Reactor>> {
    let (c, _) = access::visible_comment(state, viewer, comment).await?;
    if c.deleted {
        return Err(AppError::NotFound);
    }
    reactors(state, viewer, Target::Comment, comment, q).await
}

async fn reactors(
    state: &AppState,
    viewer: Option<Id>,
    target: Target,
    id: Id,
    q: ReactorQuery,
) -> AppResult<Page<Reactor>> {
    let page = q.page.parse::<(i64, Id)>()?;
    let kind = q.kind.map(|k| k.trim().to_ascii_lowercase()).filter(|k| !k.is_empty());
    let mut c = state.store.conn().await?;
    if let Some(k) = &kind
        && store::get_type(c.ex(), k).await?.is_none()
    {
        return Err(AppError::field("type", "unknown reaction type"));
    }
    let rows = store::reactors(c.ex(), target, id, kind.as_deref(), page.after, page.limit).await?;
    let page = Page::from_rows(rows, page.limit, |(u, _, t)| (t.0, *u));
    let users: HashMap<Id, UserSummary> =
        user_store::get_many(c.ex(), &page.items.iter().map(|r| r.0).collect::<Vec<_>>())
            .await?
            .iter()
            .map(|u| (u.id, UserSummary::from(u)))
            .collect();
    drop(c);
    let items = access::filter_blocked(state, viewer, page.items, |r| r.0).await?;
    Ok(Page {
        items: items
            .into_iter()
            .filter_map(|(u, kind, t)| users.get(&u).map(|s| Reactor { user: s.clone(), kind, reacted_at: t }))
            .collect(),
        next_cursor: page.next_cursor,
    })
}

/// `chorus reactions list`: every type, with its state, as printable lines.
pub async fn cli_list(store: &Store) -> anyhow::Result<Vec<String>> {
    let mut c = store.conn().await?;
    Ok(store::types(c.ex())
        .await?
        .into_iter()
        .map(|t| {
            format!(
                "{:>3}  {:<12} {}  {:<16} {}",
                t.position,
                t.key,
                t.emoji,
                t.label,
                if t.active { "active" } else { "disabled" }
            )
        })
        .collect())
}

/// `chorus reactions add`: creates a type, or updates and re-enables an existing one.
pub async fn cli_add(store: &Store, key: &str, emoji: &str, label: &str, position: Option<i32>) -> anyhow::Result<()> {
    let key = key.trim().to_ascii_lowercase();
    anyhow::ensure!(
        !key.is_empty()
            && key.len() <= 32
            && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "key must be 1–32 characters of [a-z0-9_]"
    );
    let (emoji, label) = (emoji.trim(), label.trim());
    anyhow::ensure!(!emoji.is_empty() && emoji.chars().count() <= 16, "emoji must be 1–16 characters");
    anyhow::ensure!(!label.is_empty() && label.chars().count() <= 50, "label must be 1–50 characters");
    let mut tx = store.begin().await?;
    store::upsert_type(tx.ex(), &key, emoji, label, position).await?;
    tx.commit().await?;
    Ok(())
}

/// `chorus reactions disable`: the type can no longer be chosen; existing reactions stay
/// counted.
pub async fn cli_disable(store: &Store, key: &str) -> anyhow::Result<()> {
    let mut tx = store.begin().await?;
    let found = store::set_type_active(tx.ex(), &key.trim().to_ascii_lowercase(), false).await?;
    anyhow::ensure!(found, "no reaction type {key:?}");
    tx.commit().await?;
    Ok(())
}

/// Takes `user`'s reaction off a post, comment or message whatever they may see now (an
/// erased account): counts and notification groups follow, as for a removal. A reaction on a
/// tombstone (or on a message) is taken off directly: there is no live view to tell.
pub async fn withdraw(state: &AppState, user: Id, target: Target, id: Id) -> AppResult<()> {
    let scope = match target {
        Target::Post => Some(id),
        Target::Comment => {
            let mut c = state.store.conn().await?;
            comment_store::get(c.ex(), id).await?.filter(|r| !r.deleted).map(|r| r.post_id)
        }
        Target::Message => None,
    };
    if let Some(post) = scope {
        match change(state, user, target, id, Scope::Post(post), None).await {
            Ok(_) => return Ok(()),
            Err(AppError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    let mut tx = state.store.begin().await?;
    if let Some(old) = store::delete(tx.ex(), target, id, user).await? {
        store::apply_counts(tx.ex(), target, id, &[(old.as_str(), -1)]).await?;
    }
    state.commit(tx, EventBatch::new()).await?;
    Ok(())
}
