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
use crate::ratelimit::Bucket;
use crate::services::access;
use crate::services::media::{self as media_svc, MediaView};
use crate::services::users::UserSummary;
use crate::state::AppState;
use crate::store::chat::{self as store, ADMIN, ConversationRow, DIRECT, GROUP, MEMBER, MemberRow, MessageRow};
use crate::store::posts::RowLock;
use crate::store::reactions::Counts;
use crate::store::reactions::{self as reaction_store, Target};
use crate::store::{Ex, Tx, users as user_store};

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
    /// The newest message (a tombstone if it was deleted).
    pub last_message: Option<MessageView>,
    /// Messages of others after my read receipt.
    pub unread_count: i64,
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
// Conversations

/// Opens a direct conversation (or returns the existing one: `created` false) or creates a
/// group.
pub async fn create(state: &AppState, me: Id, req: NewConversation) -> AppResult<(ConversationView, bool)> {
    match req {
        NewConversation::Direct { user_id } => {
            let (other, _) = access::visible_user(state, Some(me), &user_id).await?;
            if other.id == me {
                return Err(AppError::field("user_id", "you cannot open a conversation with yourself"));
            }
            let key = direct_key(me, other.id);
            let mut tx = state.store.begin().await?;
            access::not_blocked(tx.ex(), me, other.id).await?;
            let id = state.ids.next();
            let now = Timestamp::now();
            let new =
                store::NewConversation { id, kind: DIRECT, title: None, direct_key: Some(&key), created_by: me, now };
            if !store::insert_conversation(tx.ex(), &new).await? {
                drop(tx);
                let mut c = state.store.conn().await?;
                let existing = store::direct_by_key(c.ex(), &key).await?.ok_or(AppError::NotFound)?;
                drop(c);
                return Ok((view_conversation(state, me, existing).await?, false));
            }
            let mut events = EventBatch::new();
            for u in [me, other.id] {
                store::insert_member(tx.ex(), id, u, MEMBER, now).await?;
            }
            announce_members(&mut tx, &mut events, id, &[me, other.id]).await?;
            state.commit(tx, events).await?;
            Ok((get(state, me, id).await?, true))
        }
        NewConversation::Group { title, member_ids } => {
            let title = valid_title(&title)?;
            let mut ids: Vec<Id> = member_ids.into_iter().filter(|i| *i != me).collect();
            let mut seen = HashSet::new();
            ids.retain(|i| seen.insert(*i));
            if ids.len() + 1 > MAX_GROUP_MEMBERS {
                return Err(AppError::field("member_ids", format!("a group has at most {MAX_GROUP_MEMBERS} members")));
            }
            let id = state.ids.next();
            let now = Timestamp::now();
            let mut tx = state.store.begin().await?;
            check_addable(&mut tx, me, &ids, "member_ids").await?;
            let new =
                store::NewConversation { id, kind: GROUP, title: Some(&title), direct_key: None, created_by: me, now };
            store::insert_conversation(tx.ex(), &new).await?;
            store::insert_member(tx.ex(), id, me, ADMIN, now).await?;
            for u in &ids {
                store::insert_member(tx.ex(), id, *u, MEMBER, now).await?;
            }
            let mut everyone = vec![me];
            everyone.extend(&ids);
            let mut events = EventBatch::new();
            announce_members(&mut tx, &mut events, id, &everyone).await?;
            state.commit(tx, events).await?;
            Ok((get(state, me, id).await?, true))
        }
    }
}

/// One conversation of mine.
pub async fn get(state: &AppState, me: Id, id: Id) -> AppResult<ConversationView> {
    let conv = membership(state, me, id).await?.0;
    view_conversation(state, me, conv).await
}

/// My conversations, most recently active first, with their last message and unread count.
pub async fn list(state: &AppState, me: Id, q: &PageQuery) -> AppResult<Page<ConversationView>> {
    let req = q.parse::<(i64, Id)>()?;
    let mut c = state.store.conn().await?;
    let rows = store::list_for(c.ex(), me, req.after.map(|(t, id)| (Timestamp(t), id)), req.limit).await?;
    drop(c);
    let page = Page::from_rows(rows, req.limit, |r| (r.last_activity_at.0, r.id));
    let views = views_of_conversations(state, me, page.items).await?;
    Ok(Page { items: views, next_cursor: page.next_cursor })
}

/// Renames a group (admins).
pub async fn update(state: &AppState, me: Id, id: Id, patch: ConversationPatch) -> AppResult<ConversationView> {
    let title = valid_title(&patch.title)?;
    let mut tx = state.store.begin().await?;
    let (conv, m) = member_in(&mut tx, me, id).await?;
    require_group_admin(&conv, &m)?;
    store::set_title(tx.ex(), id, &title).await?;
    state.commit(tx, EventBatch::new()).await?;
    get(state, me, id).await
}

/// Adds members to a group (admins).
pub async fn add_members(state: &AppState, me: Id, id: Id, req: AddMembers) -> AppResult<ConversationView> {
    let mut ids = req.user_ids;
    let mut seen = HashSet::new();
    ids.retain(|i| seen.insert(*i));
    if ids.is_empty() {
        return Err(AppError::field("user_ids", "name at least one user"));
    }
    let mut tx = state.store.begin().await?;
    let (conv, m) = member_in(&mut tx, me, id).await?;
    require_group_admin(&conv, &m)?;
    check_addable(&mut tx, me, &ids, "user_ids").await?;
    let now = Timestamp::now();
    let mut added = Vec::new();
    for u in &ids {
        if store::insert_member(tx.ex(), id, *u, MEMBER, now).await? {
            added.push(*u);
        }
    }
    if store::members_of(tx.ex(), &[id]).await?.len() > MAX_GROUP_MEMBERS {
        return Err(AppError::field("user_ids", format!("a group has at most {MAX_GROUP_MEMBERS} members")));
    }
    let mut events = EventBatch::new();
    announce_members(&mut tx, &mut events, id, &added).await?;
    state.commit(tx, events).await?;
    get(state, me, id).await
}

/// Removes `user` from a group: leaving (oneself) or removal by an admin. The last admin
/// leaving hands the role to the longest-standing member; the last member leaving leaves
/// an empty conversation nobody can see.
pub async fn remove_member(state: &AppState, me: Id, id: Id, user: Id) -> AppResult<()> {
    let mut tx = state.store.begin().await?;
    let (conv, m) = member_in(&mut tx, me, id).await?;
    if conv.kind == DIRECT {
        return Err(AppError::field("user", "the members of a direct conversation do not change"));
    }
    if user != me {
        require_group_admin(&conv, &m)?;
    }
    let gone = user_store::get(tx.ex(), user).await?.ok_or(AppError::NotFound)?;
    if !store::delete_member(tx.ex(), id, user).await? {
        return Err(AppError::NotFound);
    }
    let rest = store::members_of(tx.ex(), &[id]).await?;
    if !rest.is_empty() && !rest.iter().any(|r| r.role == ADMIN) {
        // Oldest member first (members_of's order).
        store::set_role(tx.ex(), id, rest[0].user_id, ADMIN).await?;
    }
    let mut events = EventBatch::new();
    let data = MemberEvent { conversation_id: id, user: UserSummary::from(&gone) };
    events.add(&mut tx, &[Topic::Chat(id)], EventName::MemberRemoved, &data).await?;
    events.ephemeral(&[Topic::Control(user)], EventName::AccessChanged, &serde_json::Value::Null);
    state.commit(tx, events).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Messages

/// Sends a message (idempotently under `client_msg_id`).
pub async fn send(state: &AppState, me: Id, id: Id, req: SendMessage) -> AppResult<Sent> {
    same_conversation(req.conversation_id, id)?;
    let body = req.body.as_deref().map(str::trim).unwrap_or("");
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(AppError::field("body", format!("at most {MAX_BODY_CHARS} characters")));
    }
    if body.is_empty() && req.media_ids.is_empty() {
        return Err(AppError::field("body", "a message needs text or media"));
    }
    let client_id = req.client_msg_id.as_deref().map(str::trim);
    if let Some(c) = client_id
        && (c.is_empty() || c.len() > MAX_CLIENT_MSG_ID)
    {
        return Err(AppError::field("client_msg_id", format!("1–{MAX_CLIENT_MSG_ID} characters")));
    }
    // A retry answers from what is stored, before any other check could now refuse it.
    if let Some(c) = client_id
        && let Some(message) = stored_retry(state, me, id, c).await?
    {
        return Ok(Sent { message, created: false });
    }
    let mut tx = state.store.begin().await?;
    let conv = store::get_conversation(tx.ex(), id, Some(RowLock::NoKeyUpdate)).await?.ok_or(AppError::NotFound)?;
    // One read of the members: whether I am one, and who else gets notified.
    let members = store::members_of(tx.ex(), &[id]).await?;
    if !members.iter().any(|m| m.user_id == me) {
        return Err(AppError::NotFound);
    }
    let others: Vec<Id> = members.into_iter().map(|m| m.user_id).filter(|u| *u != me).collect();
    access::direct_open(tx.ex(), me, &conv, &others).await?;
    if let Some(r) = req.reply_to {
        let target = store::get_message(tx.ex(), r, Some(RowLock::KeyShare)).await?;
        if target.is_none_or(|t| t.conversation_id != id) {
            return Err(AppError::field("reply_to", "no such message in this conversation"));
        }
    }
    let msg_id = state.ids.next();
    let now = Timestamp::now();
    let new = store::NewMessage {
        id: msg_id,
        conversation_id: id,
        sender_id: me,
        body,
        reply_to: req.reply_to,
        client_msg_id: client_id,
        now,
    };
    if !store::insert_message(tx.ex(), &new).await? {
        // A concurrent retry stored it first.
        drop(tx);
        let message = stored_retry(state, me, id, client_id.unwrap_or_default()).await?.ok_or(AppError::NotFound)?;
        return Ok(Sent { message, created: false });
    }
    media_svc::attach_to_message(&mut tx, me, msg_id, &req.media_ids).await?;
    store::touch(tx.ex(), id, msg_id, now).await?;
    // My own message is read (and delivered) for me.
    store::advance_receipts(tx.ex(), id, me, Some(msg_id), msg_id).await?;
    let row = MessageRow {
        id: msg_id,
        conversation_id: id,
        sender_id: me,
        body: Some(body.to_string()),
        reply_to: req.reply_to,
        client_msg_id: client_id.map(str::to_string),
        deleted: false,
        created_at: now,
        updated_at: now,
    };
    let message = view_message(state, tx.ex(), row).await?;
    let mut events = EventBatch::by(me);
    events.add(&mut tx, &[Topic::Chat(id)], EventName::MessageCreated, &message).await?;
    // Members with no open socket get a `message` notification (a durable job decides).
    let preview = if body.is_empty() { "sent an attachment" } else { body };
    crate::services::notifications::message_sent(state, &mut tx, id, msg_id, me, &others, preview).await?;
    state.commit(tx, events).await?;
    Ok(Sent { message, created: true })
}

/// The message `me` stored under `client_id`, as a view (a retried send).
async fn stored_retry(state: &AppState, me: Id, conv: Id, client_id: &str) -> AppResult<Option<MessageView>> {
    let mut c = state.store.conn().await?;
    match store::by_client_id(c.ex(), conv, me, client_id).await? {
        Some(row) => Ok(Some(view_message(state, c.ex(), row).await?)),
        None => Ok(None),
    }
}

/// History of a conversation: `before` a message (newest first, the default) or `after`
/// one (oldest first). `next_cursor` is the id to pass again in the same direction.
pub async fn history(state: &AppState, me: Id, id: Id, q: &HistoryQuery) -> AppResult<Page<MessageView>> {
    if q.before.is_some() && q.after.is_some() {
        return Err(AppError::field("after", "give before or after, not both"));
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::field("limit", format!("must be 1–{MAX_LIMIT}")));
    }
    membership(state, me, id).await?;
    let mut c = state.store.conn().await?;
    let mut rows = store::history(c.ex(), id, q.before, q.after, limit).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|r| r.id.to_string()) } else { None };
    Ok(Page { items: views_of_messages(state, c.ex(), rows).await?, next_cursor })
}

/// Edits my message's text.
pub async fn edit_message(state: &AppState, me: Id, msg: Id, req: EditMessage) -> AppResult<MessageView> {
    let body = req.body.trim();
    if body.is_empty() || body.chars().count() > MAX_BODY_CHARS {
        return Err(AppError::field("body", format!("1–{MAX_BODY_CHARS} characters")));
    }
    let mut tx = state.store.begin().await?;
    let row = own_message(&mut tx, me, msg).await?;
    let conv = store::get_conversation(tx.ex(), row.conversation_id, None).await?.ok_or(AppError::NotFound)?;
    access::act_in_conversation(tx.ex(), me, &conv).await?;
    let now = Timestamp::now();
    store::edit_message(tx.ex(), msg, body, now).await?;
    let row = MessageRow { body: Some(body.to_string()), updated_at: now, ..row };
    let view = view_message(state, tx.ex(), row).await?;
    let mut events = EventBatch::by(me);
    events.add(&mut tx, &[Topic::Chat(view.conversation_id)], EventName::MessageUpdated, &view).await?;
    state.commit(tx, events).await?;
    Ok(view)
}

/// Deletes my message for everyone: a tombstone stays; its media are deleted durably.
pub async fn delete_message(state: &AppState, me: Id, msg: Id) -> AppResult<()> {
    let mut tx = state.store.begin().await?;
    let row = own_message(&mut tx, me, msg).await?;
    media_svc::release_message_media(state, &mut tx, msg).await?;
    if let Some(body) = &row.body {
        crate::services::notifications::message_deleted(&mut tx, row.conversation_id, body).await?;
    }
    store::tombstone(tx.ex(), msg, Timestamp::now()).await?;
    let mut events = EventBatch::by(me);
    let data = MessageDeleted { id: msg, conversation_id: row.conversation_id };
    events.add(&mut tx, &[Topic::Chat(row.conversation_id)], EventName::MessageDeleted, &data).await?;
    state.commit(tx, events).await?;
    Ok(())
}

/// Checks that `me` may react to message `msg`; its conversation.
pub async fn reactable(state: &AppState, me: Id, msg: Id) -> AppResult<Id> {
    let mut c = state.store.conn().await?;
    let row = store::get_message(c.ex(), msg, None).await?.ok_or(AppError::NotFound)?;
    let conv = store::get_conversation(c.ex(), row.conversation_id, None).await?.ok_or(AppError::NotFound)?;
    access::act_in_conversation(c.ex(), me, &conv).await?;
    if row.deleted {
        return Err(AppError::NotFound);
    }
    Ok(row.conversation_id)
}

/// Adds the `message.reaction` event of a changed reaction to `events` (inside `tx`).
pub async fn reaction_event(
    tx: &mut Tx,
    events: &mut EventBatch,
    conversation: Id,
    message: Id,
    counts: &Counts,
) -> AppResult<()> {
    let data = MessageReaction { message_id: message, conversation_id: conversation, reaction_counts: counts.clone() };
    events.add(tx, &[Topic::Chat(conversation)], EventName::MessageReaction, &data).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Receipts, unread counts, typing

/// Moves my read (or delivered) receipt forward to `message_id` and tells the other members
/// and my other devices (`read`). Moving backwards changes nothing and publishes nothing.
pub async fn mark_read(state: &AppState, me: Id, id: Id, req: MarkRead) -> AppResult<Receipt> {
    same_conversation(req.conversation_id, id)?;
    let mut tx = state.store.begin().await?;
    let (conv, _) = member_in(&mut tx, me, id).await?;
    access::act_in_conversation(tx.ex(), me, &conv).await?;
    let target = store::get_message(tx.ex(), req.message_id, Some(RowLock::KeyShare)).await?;
    if target.is_none_or(|t| t.conversation_id != id) {
        return Err(AppError::field("message_id", "no such message in this conversation"));
    }
    let read = (req.receipt == ReceiptKind::Read).then_some(req.message_id);
    let receipt = Receipt { conversation_id: id, user_id: me, message_id: req.message_id, receipt: req.receipt };
    if store::advance_receipts(tx.ex(), id, me, read, req.message_id).await? {
        let mut events = EventBatch::by(me);
        events.add(&mut tx, &[Topic::Chat(id)], EventName::Read, &receipt).await?;
        state.commit(tx, events).await?;
    }
    Ok(receipt)
}

/// My unread messages per conversation and in total.
pub async fn unread(state: &AppState, me: Id) -> AppResult<UnreadCounts> {
    let mut c = state.store.conn().await?;
    let rows = store::unread_counts(c.ex(), me, None).await?;
    let total = rows.iter().map(|r| r.1).sum();
    let mut conversations: Vec<ConversationUnread> = rows
        .into_iter()
        .map(|(conversation_id, unread_count)| ConversationUnread { conversation_id, unread_count })
        .collect();
    conversations.sort_by_key(|c| c.conversation_id);
    Ok(UnreadCounts { total, conversations })
}

/// Tells the other members I am typing (throttled; `{"sent": false}` when dropped).
pub async fn typing(state: &AppState, me: Id, id: Id) -> AppResult<serde_json::Value> {
    let mut c = state.store.conn().await?;
    let conv = store::get_conversation(c.ex(), id, None).await?.ok_or(AppError::NotFound)?;
    access::act_in_conversation(c.ex(), me, &conv).await?;
    drop(c);
    match state.limits.check(Bucket::Typing, &format!("{me}:{id}")).await {
        Ok(()) => {}
        Err(AppError::RateLimited(_)) => return Ok(serde_json::json!({"sent": false})),
        Err(e) => return Err(e),
    }
    let mut events = EventBatch::by(me);
    let data = Typing { conversation_id: id, user_id: me, expires_in_ms: TYPING_TTL_MS };
    events.transient(Topic::Chat(id), EventName::Typing, &data);
    state.publish(events);
    Ok(serde_json::json!({"sent": true}))
}

// ---------------------------------------------------------------------------------------
// For the hub

/// The conversations `user` belongs to, with the chat topic position each membership
/// started at (`member.added` is the next event).
pub async fn memberships(state: &AppState, user: Id) -> AppResult<Vec<(Topic, i64)>> {
    let mut c = state.store.conn().await?;
    Ok(store::memberships(c.ex(), user).await?.into_iter().map(|(id, seq)| (Topic::Chat(id), seq)).collect())
}

/// Whether `user` may watch conversation `id`.
pub async fn is_member(state: &AppState, user: Id, id: Id) -> AppResult<bool> {
    let mut c = state.store.conn().await?;
    Ok(store::member(c.ex(), id, user).await?.is_some())
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

/// `member.added` for each new member, and their sessions told to pick the conversation up
/// from that event on.
async fn announce_members(tx: &mut Tx, events: &mut EventBatch, id: Id, users: &[Id]) -> AppResult<()> {
    let rows = user_store::get_many(tx.ex(), users).await?;
    for u in &rows {
        let data = MemberEvent { conversation_id: id, user: UserSummary::from(u) };
        events.add(tx, &[Topic::Chat(id)], EventName::MemberAdded, &data).await?;
        let seq = events.last_seq(&Topic::Chat(id)).unwrap_or(1);
        store::set_joined_seq(tx.ex(), id, u.id, seq - 1).await?;
        events.ephemeral(&[Topic::Control(u.id)], EventName::AccessChanged, &serde_json::Value::Null);
    }
    Ok(())
}

/// The conversation and my membership, read outside a transaction; `404` for non-members.
async fn membership(state: &AppState, me: Id, id: Id) -> AppResult<(ConversationRow, MemberRow)> {
    let mut c = state.store.conn().await?;
    let conv = store::get_conversation(c.ex(), id, None).await?.ok_or(AppError::NotFound)?;
    let m = store::member(c.ex(), id, me).await?.ok_or(AppError::NotFound)?;
    Ok((conv, m))
}

/// Like [`membership`], inside a write transaction, the conversation row locked so
/// membership changes of one conversation queue.
async fn member_in(tx: &mut Tx, me: Id, id: Id) -> AppResult<(ConversationRow, MemberRow)> {
    let conv = store::get_conversation(tx.ex(), id, Some(RowLock::NoKeyUpdate)).await?.ok_or(AppError::NotFound)?;
    let m = store::member(tx.ex(), id, me).await?.ok_or(AppError::NotFound)?;
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

async fn view_conversation(state: &AppState, me: Id, conv: ConversationRow) -> AppResult<ConversationView> {
    Ok(views_of_conversations(state, me, vec![conv]).await?.pop().expect("one in, one out"))
}

async fn views_of_conversations(
    state: &AppState,
    me: Id,
    convs: Vec<ConversationRow>,
) -> AppResult<Vec<ConversationView>> {
    let ids: Vec<Id> = convs.iter().map(|c| c.id).collect();
    let mut c = state.store.conn().await?;
    let members = store::members_of(c.ex(), &ids).await?;
    let unread: HashMap<Id, i64> = store::unread_counts(c.ex(), me, Some(&ids)).await?.into_iter().collect();
    let last_ids: Vec<Id> = convs.iter().filter_map(|c| c.last_message_id).collect();
    let last_rows = store::get_messages(c.ex(), &last_ids).await?;
    let mut user_ids: Vec<Id> = members.iter().map(|m| m.user_id).collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    let users: HashMap<Id, UserSummary> =
        user_store::get_many(c.ex(), &user_ids).await?.iter().map(|u| (u.id, UserSummary::from(u))).collect();
    let last: HashMap<Id, MessageView> =
        views_of_messages(state, c.ex(), last_rows).await?.into_iter().map(|m| (m.conversation_id, m)).collect();
    drop(c);
    let mut by_conv: HashMap<Id, Vec<MemberView>> = HashMap::new();
    for m in members {
        let Some(user) = users.get(&m.user_id) else { continue };
        let nonzero = |i: Id| (i.0 != 0).then_some(i);
        by_conv.entry(m.conversation_id).or_default().push(MemberView {
            user: user.clone(),
            role: m.role,
            joined_at: m.joined_at,
            last_read_message_id: nonzero(m.last_read_id),
            last_delivered_message_id: nonzero(m.last_delivered_id),
        });
    }
    Ok(convs
        .into_iter()
        .map(|c| ConversationView {
            id: c.id,
            kind: c.kind,
            title: c.title,
            members: by_conv.remove(&c.id).unwrap_or_default(),
            last_message: last.get(&c.id).cloned(),
            unread_count: unread.get(&c.id).copied().unwrap_or(0),
            created_at: c.created_at,
            last_activity_at: c.last_activity_at,
        })
        .collect())
}

async fn view_message(state: &AppState, ex: Ex<'_>, row: MessageRow) -> AppResult<MessageView> {
    Ok(views_of_messages(state, ex, vec![row]).await?.pop().expect("one in, one out"))
}

/// Messages as clients see them, read through `ex`: a connection, or the transaction that
/// is writing them (a message it stores or edits is not committed yet).
async fn views_of_messages(state: &AppState, mut ex: Ex<'_>, rows: Vec<MessageRow>) -> AppResult<Vec<MessageView>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Id> = rows.iter().map(|r| r.id).collect();
    let mut sender_ids: Vec<Id> = rows.iter().map(|r| r.sender_id).collect();
    sender_ids.sort_unstable();
    sender_ids.dedup();
    let users: HashMap<Id, UserSummary> =
        user_store::get_many(ex.reborrow(), &sender_ids).await?.iter().map(|u| (u.id, UserSummary::from(u))).collect();
    let links = store::media_of(ex.reborrow(), &ids).await?;
    let mut counts: HashMap<Id, Counts> = HashMap::new();
    for (id, kind, n) in reaction_store::counts_of(ex.reborrow(), Target::Message, &ids).await? {
        counts.entry(id).or_default().insert(kind, n);
    }
    let media_ids: Vec<Id> = links.iter().map(|l| l.1).collect();
    let mut media = media_svc::message_views(state, ex, &media_ids).await?;
    let mut by_msg: HashMap<Id, Vec<MediaView>> = HashMap::new();
    for (msg, m) in links {
        if let Some(v) = media.remove(&m) {
            by_msg.entry(msg).or_default().push(v);
        }
    }
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let sender = users.get(&r.sender_id)?.clone();
            let (id, media) = (r.id, by_msg.remove(&r.id).unwrap_or_default());
            Some(assemble(r, sender, media, counts.remove(&id).unwrap_or_default()))
        })
        .collect())
}

fn assemble(r: MessageRow, sender: UserSummary, media: Vec<MediaView>, reaction_counts: Counts) -> MessageView {
    MessageView {
        id: r.id,
        conversation_id: r.conversation_id,
        sender,
        edited: !r.deleted && r.updated_at != r.created_at,
        body: if r.deleted { None } else { r.body },
        media: if r.deleted { Vec::new() } else { media },
        reply_to: r.reply_to,
        client_msg_id: r.client_msg_id,
        deleted: r.deleted,
        reaction_counts,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}
