//! Chat: direct and group conversations, messages, receipts, typing.
//!
//! # Rules
//! - **Direct** conversations: one per pair, created idempotently (`POST` again returns the
//!   same one); their two members never change. A block either way refuses sending in one
//!   (`403`) and opening one (`404`: a blocked account is invisible, as everywhere).
//! - **Groups**: a title, members and admins. The creator is an admin; admins rename, add and
//!   remove members; anyone may leave; when the last admin leaves, the longest-standing member
//!   becomes admin. At most [`MAX_GROUP_MEMBERS`] members.
//! - Only members read or write. A non-member sees a conversation as `404`.
//! - **Messages**: text up to 4,000 characters and/or up to 10 of the sender's ready uploads,
//!   an optional reply to a message of the same conversation. A `client_msg_id` makes sending
//!   idempotent: the unique index `(conversation, sender, client_msg_id)` decides, so a
//!   retried send — even concurrent, even on another instance — returns the stored message
//!   (`created: false`) and publishes nothing again. Edit and delete-for-everyone are the
//!   sender's; a deleted message stays as a tombstone (`deleted: true`, no body, no media).
//! - **Receipts**: per member, the last message read and the last delivered to a device;
//!   they only move forward, and sending a message reads the conversation up to it. Unread
//!   counts are derived from the read receipt, so every
//!   device of a user agrees, and the `read` event keeps their open sockets in step.
//! - **Typing** is transient (no `seq`, never replayed), throttled to one event per user and
//!   conversation every 3 s (shared through Redis in a cluster); clients drop an indicator
//!   after [`TYPING_TTL_MS`] without a new event.
//!
//! # Events (on `chat:{id}`, durable unless noted)
//! `message.created|updated|deleted`, `message.reaction`, `read`, `member.added|removed`,
//! `typing` (transient). Membership changes also tell the member's sessions on every
//! instance to re-check their subscriptions (internal `access.changed` on their control
//! topic): a new member's open sockets start receiving the conversation from the
//! `member.added` event on, a removed member's sockets stop.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{Id, Timestamp};
use crate::error::{AppError, AppResult};
use crate::events::{EventBatch, EventName, Topic};
use crate::pagination::{DEFAULT_LIMIT, MAX_LIMIT, Page, PageQuery};
use crate::ratelimit::{Bucket, Write};
use crate::services::access;
use crate::services::media::{self as media_svc, MediaView};
use crate::services::users::UserSummary;
use crate::state::AppState;
use crate::store::chat::{self as store, ADMIN, ConversationRow, DIRECT, GROUP, MEMBER, MemberRow, MessageRow};
use crate::store::posts::RowLock;
use crate::store::reactions::Counts;
use crate::store::reactions::{self as reaction_store, Target};
use crate::store::{Ex, Tx, users as user_store};

mod conversations;
mod messages;
mod receipts;
mod views;

pub use conversations::{
    ConversationRequest, accept, add_members, create, decline, get, list, remove_member, requests, update,
};
pub use messages::{
    delete_message, edit_message, history, reactable, reaction_event, remove_message, reported_message, send,
};
pub use receipts::{mark_read, typing, unread};
use views::{view_conversation, view_message, view_new_message, views_of_conversations, views_of_messages};

/// Largest group.
pub const MAX_GROUP_MEMBERS: usize = 256;
/// Longest message text, in characters.
pub const MAX_BODY_CHARS: usize = 4_000;
/// Longest group title, in characters.
pub const MAX_TITLE_CHARS: usize = 100;
/// Longest `client_msg_id`.
pub const MAX_CLIENT_MSG_ID: usize = 100;
/// How long a client shows a typing indicator without a new `typing` event.
pub const TYPING_TTL_MS: u64 = 6_000;

/// `POST /conversations` body.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum NewConversation {
    /// A one-to-one conversation with `user_id` (an id or `@username`).
    Direct {
        /// The other person.
        user_id: String,
    },
    /// A group.
    Group {
        /// Title, 1–100 characters.
        title: String,
        /// Members besides the creator.
        #[serde(default)]
        member_ids: Vec<Id>,
    },
}

/// `PATCH /conversations/{id}` body.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationPatch {
    /// New group title.
    pub title: String,
}

/// `POST /conversations/{id}/members` body.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMembers {
    /// Users to add.
    pub user_ids: Vec<Id>,
}

/// A member as listed in a conversation.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MemberView {
    /// Who.
    pub user: UserSummary,
    /// `admin` or `member`.
    pub role: String,
    /// Since when.
    pub joined_at: Timestamp,
    /// Read receipt: the last message they read.
    pub last_read_message_id: Option<Id>,
    /// Delivery receipt: the last message that reached one of their devices.
    pub last_delivered_message_id: Option<Id>,
}

/// A conversation as its members see it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ConversationView {
    /// Id (`chat:{id}` is its topic).
    pub id: Id,
    /// `direct` or `group`.
    pub kind: String,
    /// Group title (`null` for direct conversations).
    pub title: Option<String>,
    /// Members, oldest first.
    pub members: Vec<MemberView>,
    /// Asked and not members yet: the recipient of a message request, the invited of a
    /// group (see `GET /conversations/requests`).
    pub requested: Vec<UserSummary>,
    /// The newest message (a tombstone if it was deleted).
    pub last_message: Option<MessageView>,
    /// Messages of others after my read receipt.
    pub unread_count: i64,
    /// Whether I muted it (`PUT /conversations/{id}/mute`): its messages notify me of
    /// nothing, in the app, by e-mail or by push.
    pub muted: bool,
    /// Created.
    pub created_at: Timestamp,
    /// Last message or creation.
    pub last_activity_at: Timestamp,
}

/// `POST /conversations/{id}/messages` and `chat.send` body.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// The conversation (socket `chat.send` only; REST takes it from the path).
    #[serde(default)]
    pub conversation_id: Option<Id>,
    /// Text, up to 4,000 characters.
    #[serde(default)]
    pub body: Option<String>,
    /// Up to 10 of the sender's ready uploads.
    #[serde(default)]
    pub media_ids: Vec<Id>,
    /// A message of this conversation replied to.
    #[serde(default)]
    pub reply_to: Option<Id>,
    /// The client's id for this message; a retry with the same id returns the stored message.
    #[serde(default)]
    pub client_msg_id: Option<String>,
}

/// `PATCH /messages/{id}` body.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    /// New text.
    pub body: String,
}

/// A chat message.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MessageView {
    /// Id (time-ordered; the history cursor).
    pub id: Id,
    /// Conversation.
    pub conversation_id: Id,
    /// Sender.
    pub sender: UserSummary,
    /// Text (`null` once deleted).
    pub body: Option<String>,
    /// Attached media, in order (empty once deleted).
    pub media: Vec<MediaView>,
    /// The message replied to.
    pub reply_to: Option<Id>,
    /// The sender's idempotency key, if it gave one.
    pub client_msg_id: Option<String>,
    /// Deleted for everyone (a tombstone).
    pub deleted: bool,
    /// Edited since sent.
    pub edited: bool,
    /// Reactions per type.
    pub reaction_counts: Counts,
    /// Sent.
    pub created_at: Timestamp,
    /// Last edit.
    pub updated_at: Timestamp,
}

/// A sent message and whether this call stored it (`false`: a retry of a stored one).
#[derive(Debug)]
pub struct Sent {
    /// The stored message.
    pub message: MessageView,
    /// Stored by this call.
    pub created: bool,
}

/// `?before=&after=&limit=` of a history request.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Messages older than this message id, newest first (the default: from the newest).
    pub before: Option<Id>,
    /// Messages newer than this message id, oldest first (catching up).
    pub after: Option<Id>,
    /// 1–100, default 20.
    pub limit: Option<u32>,
}

/// Which receipt a client reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptKind {
    /// Read (implies delivered).
    #[default]
    Read,
    /// Arrived on a device, not yet read.
    Delivered,
}

/// `POST /conversations/{id}/read` and `chat.read` body.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// The conversation (socket `chat.read` only).
    #[serde(default)]
    pub conversation_id: Option<Id>,
    /// The newest message read (or delivered).
    pub message_id: Id,
    /// `read` (default) or `delivered`.
    #[serde(default)]
    pub receipt: ReceiptKind,
}

/// Data of the `read` event, and the answer to marking read.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Receipt {
    /// Conversation.
    pub conversation_id: Id,
    /// Whose receipt.
    pub user_id: Id,
    /// The message the receipt points at.
    pub message_id: Id,
    /// `read` or `delivered`.
    pub receipt: ReceiptKind,
}

/// Unread messages, per conversation and in total.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UnreadCounts {
    /// Across all conversations.
    pub total: i64,
    /// Per conversation with unread messages.
    pub conversations: Vec<ConversationUnread>,
}

/// Unread messages of one conversation.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ConversationUnread {
    /// Conversation.
    pub conversation_id: Id,
    /// Unread messages.
    pub unread_count: i64,
}

#[derive(Serialize)]
struct MemberEvent {
    conversation_id: Id,
    user: UserSummary,
}

#[derive(Serialize)]
struct MessageDeleted {
    id: Id,
    conversation_id: Id,
}

#[derive(Serialize)]
struct MessageReaction {
    message_id: Id,
    conversation_id: Id,
    reaction_counts: Counts,
}

#[derive(Serialize)]
struct Typing {
    conversation_id: Id,
    user_id: Id,
    expires_in_ms: u64,
}

// ---------------------------------------------------------------------------------------
// For the hub

/// The conversations `user` belongs to, with the chat topic position each membership
/// started at (`member.added` is the next event).
pub async fn memberships(state: &AppState, user: Id) -> AppResult<Vec<(Topic, i64)>> {
    let mut c = state.store.conn().await?;
    Ok(store::memberships(c.ex(), user).await?.into_iter().map(|(id, seq)| (Topic::Chat(id), seq)).collect())
}

// ---------------------------------------------------------------------------------------
// Helpers

/// A body's `conversation_id` (REST bodies may repeat the path's) must name the path's.
fn same_conversation(given: Option<Id>, path: Id) -> AppResult<()> {
    match given {
        Some(c) if c != path => Err(AppError::field("conversation_id", "does not match the conversation in the path")),
        _ => Ok(()),
    }
}

fn direct_key(a: Id, b: Id) -> String {
    let (lo, hi) = if a.0 < b.0 { (a, b) } else { (b, a) };
    format!("{lo}:{hi}")
}

fn valid_title(t: &str) -> AppResult<String> {
    let t = t.trim();
    if t.is_empty() || t.chars().count() > MAX_TITLE_CHARS {
        return Err(AppError::field("title", format!("1–{MAX_TITLE_CHARS} characters")));
    }
    Ok(t.to_string())
}

/// Every id must be an existing account with no block either way between it and `me` (a
/// blocked account reads as unknown, as everywhere). Two queries for the whole list, inside
/// the transaction that adds them, so a block landing meanwhile is seen.
async fn check_addable(tx: &mut Tx, me: Id, ids: &[Id], field: &str) -> AppResult<()> {
    if let Some(bad) = access::first_unaddable(tx.ex(), me, ids).await? {
        return Err(AppError::field(field, format!("user {bad} not found")));
    }
    Ok(())
}

fn require_group_admin(conv: &ConversationRow, m: &MemberRow) -> AppResult<()> {
    if conv.kind != GROUP {
        return Err(AppError::field("kind", "only groups have titles and changing members"));
    }
    if m.role != ADMIN {
        return Err(AppError::Forbidden("only group admins may do this"));
    }
    Ok(())
}

/// The conversation and my membership, read outside a transaction; `404` for non-members.
async fn membership(state: &AppState, me: Id, id: Id) -> AppResult<(ConversationRow, MemberRow)> {
    let mut c = state.store.conn().await?;
    let conv = store::get_conversation(c.ex(), id, None).await?.ok_or(AppError::NotFound)?;
    let m = access::member_of(c.ex(), me, id).await?;
    Ok((conv, m))
}

/// Mutes (or unmutes) conversation `id` for me, a member (`404` for anyone else:
/// [`access::member_of`]). Blocks do not matter: it changes what reaches me only.
pub async fn set_muted(state: &AppState, me: Id, id: Id, muted: bool) -> AppResult<()> {
    let mut tx = state.store.begin().await?;
    member_in(&mut tx, me, id).await?;
    store::set_muted(tx.ex(), id, me, muted).await?;
    tx.commit().await?;
    Ok(())
}

/// Like [`membership`], inside a write transaction, the conversation row locked so
/// membership changes of one conversation queue.
async fn member_in(tx: &mut Tx, me: Id, id: Id) -> AppResult<(ConversationRow, MemberRow)> {
    let conv = store::get_conversation(tx.ex(), id, Some(RowLock::NoKeyUpdate)).await?.ok_or(AppError::NotFound)?;
    let m = access::member_of(tx.ex(), me, id).await?;
    Ok((conv, m))
}

async fn own_message(tx: &mut Tx, me: Id, msg: Id) -> AppResult<MessageRow> {
    let row = store::get_message(tx.ex(), msg, Some(RowLock::Update)).await?.ok_or(AppError::NotFound)?;
    if store::member(tx.ex(), row.conversation_id, me).await?.is_none() || row.deleted {
        return Err(AppError::NotFound);
    }
    if row.sender_id != me {
        return Err(AppError::Forbidden("only the sender may change a message"));
    }
    Ok(row)
}
