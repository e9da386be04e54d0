//! Conversations, their members (with read and delivery receipts) and messages.
//!
//! Messages are keyed by their time-ordered id within a conversation; history pages walk
//! that key in either direction. Unread counts are computed from each member's
//! `last_read_id` (messages of others after it, tombstones excluded): nothing to keep in
//! step when a message is deleted. Who may read or write is decided by `services::chat`.

use sqlx::FromRow;

use super::posts::{RowLock, in_list};
use super::{Ex, StoreResult, fetch_limit};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// `conversations.kind` of a one-to-one conversation.
pub const DIRECT: &str = "direct";
/// `conversations.kind` of a group.
pub const GROUP: &str = "group";
/// `conversation_members.role` of an admin.
pub const ADMIN: &str = "admin";
/// `conversation_members.role` of a plain member.
pub const MEMBER: &str = "member";

/// A `conversations` row.
#[derive(Clone, Debug, FromRow)]
pub struct ConversationRow {
    /// Id.
    pub id: Id,
    /// [`DIRECT`] or [`GROUP`].
    pub kind: String,
    /// Group title.
    pub title: Option<String>,
    /// Creator.
    pub created_by: Id,
    /// Created.
    pub created_at: Timestamp,
    /// Newest message.
    pub last_message_id: Option<Id>,
    /// Last message, or creation.
    pub last_activity_at: Timestamp,
}

const CONV_COLS: &str = "c.id, c.kind, c.title, c.created_by, c.created_at, c.last_message_id, c.last_activity_at";

/// A `conversation_members` row.
#[derive(Clone, Debug, FromRow)]
pub struct MemberRow {
    /// Conversation.
    pub conversation_id: Id,
    /// Member.
    pub user_id: Id,
    /// [`ADMIN`] or [`MEMBER`].
    pub role: String,
    /// Joined.
    pub joined_at: Timestamp,
    /// Chat topic seq just before the join.
    pub joined_seq: i64,
    /// Read receipt.
    pub last_read_id: Id,
    /// Delivery receipt.
    pub last_delivered_id: Id,
    /// Muted by the member: no notifications of its messages.
    pub muted: bool,
}

const MEMBER_COLS: &str =
    "conversation_id, user_id, role, joined_at, joined_seq, last_read_id, last_delivered_id, muted";

/// A `messages` row.
#[derive(Clone, Debug, FromRow)]
pub struct MessageRow {
    /// Id (time-ordered).
    pub id: Id,
    /// Conversation.
    pub conversation_id: Id,
    /// Sender.
    pub sender_id: Id,
    /// Text; `None` once deleted.
    pub body: Option<String>,
    /// The message replied to.
    pub reply_to: Option<Id>,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
    /// Tombstone.
    pub deleted: bool,
    /// Sent.
    pub created_at: Timestamp,
    /// Last edit or deletion.
    pub updated_at: Timestamp,
}

const MSG_COLS: &str = "id, conversation_id, sender_id, body, reply_to, client_msg_id, deleted, created_at, updated_at";

fn lock_clause(ex: &Ex<'_>, lock: Option<RowLock>) -> &'static str {
    lock.map_or("", |l| l.clause(ex.backend()))
}

/// A new conversation.
pub struct NewConversation<'a> {
    /// Id.
    pub id: Id,
    /// [`DIRECT`] or [`GROUP`].
    pub kind: &'a str,
    /// Group title.
    pub title: Option<&'a str>,
    /// `low:high` for a direct conversation.
    pub direct_key: Option<&'a str>,
    /// Creator.
    pub created_by: Id,
    /// Now.
    pub now: Timestamp,
}

/// Inserts a conversation; `false` when its `direct_key` exists already (the pair has one).
pub async fn insert_conversation(ex: Ex<'_>, c: &NewConversation<'_>) -> StoreResult<bool> {
    let sql = "INSERT INTO conversations (id, kind, title, direct_key, created_by, created_at, last_activity_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING";
    let n = exec!(ex, x => sqlx::query(sql).bind(c.id).bind(c.kind).bind(c.title).bind(c.direct_key)
        .bind(c.created_by).bind(c.now).execute(x).await)?;
    Ok(n == 1)
}

/// The direct conversation of a pair, by its key.
pub async fn direct_by_key(ex: Ex<'_>, key: &str) -> StoreResult<Option<ConversationRow>> {
    let sql = format!("SELECT {CONV_COLS} FROM conversations c WHERE c.direct_key = $1");
    Ok(run!(ex, x => sqlx::query_as(&sql).bind(key).fetch_optional(x).await)?)
}

/// One conversation; `lock` (inside a write transaction) keeps it, and so its membership
/// changes, serialised on PostgreSQL. Plain reads pass `None`: a row lock outside a
/// transaction protects nothing and still writes the row's lock marker.
pub async fn get_conversation(ex: Ex<'_>, id: Id, lock: Option<RowLock>) -> StoreResult<Option<ConversationRow>> {
    let sql = format!("SELECT {CONV_COLS} FROM conversations c WHERE c.id = $1{}", lock_clause(&ex, lock));
    Ok(run!(ex, x => sqlx::query_as(&sql).bind(id).fetch_optional(x).await)?)
}

/// Conversations by id (in no particular order; unknown ids are absent).
pub async fn get_conversations(ex: Ex<'_>, ids: &[Id]) -> StoreResult<Vec<ConversationRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {CONV_COLS} FROM conversations c WHERE c.id IN ({})", in_list(ids));
    Ok(run!(ex, x => sqlx::query_as(&sql).fetch_all(x).await)?)
}

/// Sets a group's title.
pub async fn set_title(ex: Ex<'_>, id: Id, title: &str) -> StoreResult<()> {
    exec!(ex, x => sqlx::query("UPDATE conversations SET title = $2 WHERE id = $1").bind(id).bind(title).execute(x).await)?;
    Ok(())
}

/// The user's conversations by last activity, newest first, after cursor `(activity, id)`.
pub async fn list_for(
    ex: Ex<'_>,
    user: Id,
    after: Option<(Timestamp, Id)>,
    limit: u32,
) -> StoreResult<Vec<ConversationRow>> {
    let (at, id) = after.unwrap_or((Timestamp(i64::MAX), Id(i64::MAX)));
    let sql = format!(
        "SELECT {CONV_COLS} FROM conversations c JOIN conversation_members m ON m.conversation_id = c.id \
         WHERE m.user_id = $1 AND (c.last_activity_at < $2 OR (c.last_activity_at = $2 AND c.id < $3)) \
         ORDER BY c.last_activity_at DESC, c.id DESC LIMIT $4"
    );
    Ok(run!(ex, x => sqlx::query_as(&sql).bind(user).bind(at).bind(id).bind(fetch_limit(limit)).fetch_all(x).await)?)
}

/// Adds a member (nothing when already one); whether it was added.
pub async fn insert_member(ex: Ex<'_>, conv: Id, user: Id, role: &str, now: Timestamp) -> StoreResult<bool> {
    let sql = "INSERT INTO conversation_members (conversation_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4) \
               ON CONFLICT (conversation_id, user_id) DO NOTHING";
    Ok(exec!(ex, x => sqlx::query(sql).bind(conv).bind(user).bind(role).bind(now).execute(x).await)? == 1)
}

/// Records the chat topic position a new member's live sessions start from.
pub async fn set_joined_seq(ex: Ex<'_>, conv: Id, user: Id, seq: i64) -> StoreResult<()> {
    let sql = "UPDATE conversation_members SET joined_seq = $3 WHERE conversation_id = $1 AND user_id = $2";
    exec!(ex, x => sqlx::query(sql).bind(conv).bind(user).bind(seq).execute(x).await)?;
    Ok(())
}

/// Removes a member; whether they were one.
pub async fn delete_member(ex: Ex<'_>, conv: Id, user: Id) -> StoreResult<bool> {
    let sql = "DELETE FROM conversation_members WHERE conversation_id = $1 AND user_id = $2";
    Ok(exec!(ex, x => sqlx::query(sql).bind(conv).bind(user).execute(x).await)? == 1)
}

/// Sets a member's role.
pub async fn set_role(ex: Ex<'_>, conv: Id, user: Id, role: &str) -> StoreResult<()> {
    let sql = "UPDATE conversation_members SET role = $3 WHERE conversation_id = $1 AND user_id = $2";
    exec!(ex, x => sqlx::query(sql).bind(conv).bind(user).bind(role).execute(x).await)?;
    Ok(())
}

/// One membership.
pub async fn member(ex: Ex<'_>, conv: Id, user: Id) -> StoreResult<Option<MemberRow>> {
    let sql = format!("SELECT {MEMBER_COLS} FROM conversation_members WHERE conversation_id = $1 AND user_id = $2");
    Ok(run!(ex, x => sqlx::query_as(&sql).bind(conv).bind(user).fetch_optional(x).await)?)
}

/// Mutes or unmutes a conversation for one member.
pub async fn set_muted(ex: Ex<'_>, conv: Id, user: Id, muted: bool) -> StoreResult<()> {
    let sql = "UPDATE conversation_members SET muted = $3 WHERE conversation_id = $1 AND user_id = $2";
    exec!(ex, x => sqlx::query(sql).bind(conv).bind(user).bind(muted).execute(x).await)?;
    Ok(())
}

/// The members of several conversations, oldest member first.
pub async fn members_of(ex: Ex<'_>, convs: &[Id]) -> StoreResult<Vec<MemberRow>> {
    if convs.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {MEMBER_COLS} FROM conversation_members WHERE conversation_id IN ({}) ORDER BY joined_at, user_id",
        in_list(convs)
    );
    Ok(run!(ex, x => sqlx::query_as(&sql).fetch_all(x).await)?)
}

/// The user's memberships (conversation id, joined seq).
pub async fn memberships(ex: Ex<'_>, user: Id) -> StoreResult<Vec<(Id, i64)>> {
    let sql = "SELECT m.conversation_id, m.joined_seq FROM conversation_members m \
               JOIN conversations c ON c.id = m.conversation_id \
               WHERE m.user_id = $1 ORDER BY c.last_activity_at DESC, c.id DESC";
    Ok(run!(ex, x => sqlx::query_as(sql).bind(user).fetch_all(x).await)?)
}

/// Moves a member's receipts forward (never back); whether the read receipt moved.
pub async fn advance_receipts(ex: Ex<'_>, conv: Id, user: Id, read: Option<Id>, delivered: Id) -> StoreResult<bool> {
    let read = read.unwrap_or(Id(0));
    let sql = "UPDATE conversation_members SET \
                 last_read_id = CASE WHEN $3 > last_read_id THEN $3 ELSE last_read_id END, \
                 last_delivered_id = CASE WHEN $4 > last_delivered_id THEN $4 ELSE last_delivered_id END \
               WHERE conversation_id = $1 AND user_id = $2 AND ($3 > last_read_id OR $4 > last_delivered_id)";
    let n = exec!(ex, x => sqlx::query(sql).bind(conv).bind(user).bind(read).bind(delivered).execute(x).await)?;
    Ok(n == 1)
}

/// Unread messages per conversation for `user` (conversations with none are absent).
pub async fn unread_counts(ex: Ex<'_>, user: Id, convs: Option<&[Id]>) -> StoreResult<Vec<(Id, i64)>> {
    let only = match convs {
        Some([]) => return Ok(Vec::new()),
        Some(ids) => format!(" AND m.conversation_id IN ({})", in_list(ids)),
        None => String::new(),
    };
    let sql = format!(
        "SELECT m.conversation_id, COUNT(*) FROM conversation_members m \
         JOIN messages x ON x.conversation_id = m.conversation_id AND x.id > m.last_read_id \
         WHERE m.user_id = $1 AND x.sender_id <> $1 AND NOT x.deleted{only} GROUP BY m.conversation_id"
    );
    Ok(run!(ex, x => sqlx::query_as(&sql).bind(user).fetch_all(x).await)?)
}

/// A new message.
pub struct NewMessage<'a> {
    /// Id.
    pub id: Id,
    /// Conversation.
    pub conversation_id: Id,
    /// Sender.
    pub sender_id: Id,
    /// Text.
    pub body: &'a str,
    /// Replied-to message.
    pub reply_to: Option<Id>,
    /// Idempotency key.
    pub client_msg_id: Option<&'a str>,
    /// Now.
    pub now: Timestamp,
}

/// Inserts a message; `false` when the sender already stored one with this
/// `client_msg_id` in the conversation (a retry).
pub async fn insert_message(ex: Ex<'_>, m: &NewMessage<'_>) -> StoreResult<bool> {
    let sql = "INSERT INTO messages (id, conversation_id, sender_id, body, reply_to, client_msg_id, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT DO NOTHING";
    let n = exec!(ex, x => sqlx::query(sql).bind(m.id).bind(m.conversation_id).bind(m.sender_id).bind(m.body)
        .bind(m.reply_to).bind(m.client_msg_id).bind(m.now).execute(x).await)?;
    Ok(n == 1)
}

/// The message a sender stored under `client_msg_id`.
pub async fn by_client_id(ex: Ex<'_>, conv: Id, sender: Id, client_msg_id: &str) -> StoreResult<Option<MessageRow>> {
    let sql =
        format!("SELECT {MSG_COLS} FROM messages WHERE conversation_id = $1 AND sender_id = $2 AND client_msg_id = $3");
    Ok(run!(ex, x => sqlx::query_as(&sql).bind(conv).bind(sender).bind(client_msg_id).fetch_optional(x).await)?)
}

/// Marks a conversation active with its newest message.
pub async fn touch(ex: Ex<'_>, conv: Id, message: Id, now: Timestamp) -> StoreResult<()> {
    let sql = "UPDATE conversations SET last_message_id = $2, last_activity_at = $3 WHERE id = $1";
    exec!(ex, x => sqlx::query(sql).bind(conv).bind(message).bind(now).execute(x).await)?;
    Ok(())
}

/// One message (`lock`: kept until commit on PostgreSQL; `None` for plain reads).
pub async fn get_message(ex: Ex<'_>, id: Id, lock: Option<RowLock>) -> StoreResult<Option<MessageRow>> {
    let sql = format!("SELECT {MSG_COLS} FROM messages WHERE id = $1{}", lock_clause(&ex, lock));
    Ok(run!(ex, x => sqlx::query_as(&sql).bind(id).fetch_optional(x).await)?)
}

/// Several messages by id.
pub async fn get_messages(ex: Ex<'_>, ids: &[Id]) -> StoreResult<Vec<MessageRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {MSG_COLS} FROM messages WHERE id IN ({})", in_list(ids));
    Ok(run!(ex, x => sqlx::query_as(&sql).fetch_all(x).await)?)
}

/// Edits a message's text.
pub async fn edit_message(ex: Ex<'_>, id: Id, body: &str, now: Timestamp) -> StoreResult<()> {
    let sql = "UPDATE messages SET body = $2, updated_at = $3 WHERE id = $1";
    exec!(ex, x => sqlx::query(sql).bind(id).bind(body).bind(now).execute(x).await)?;
    Ok(())
}

/// Turns a message into a tombstone.
pub async fn tombstone(ex: Ex<'_>, id: Id, now: Timestamp) -> StoreResult<()> {
    let sql = "UPDATE messages SET body = NULL, deleted = TRUE, updated_at = $2 WHERE id = $1";
    exec!(ex, x => sqlx::query(sql).bind(id).bind(now).execute(x).await)?;
    Ok(())
}

/// History: `before` a message id (newest first) or `after` one (oldest first).
pub async fn history(
    ex: Ex<'_>,
    conv: Id,
    before: Option<Id>,
    after: Option<Id>,
    limit: u32,
) -> StoreResult<Vec<MessageRow>> {
    let (cond, order, bound) = match (before, after) {
        (_, Some(a)) => (">", "ASC", a),
        (b, None) => ("<", "DESC", b.unwrap_or(Id(i64::MAX))),
    };
    let sql = format!(
        "SELECT {MSG_COLS} FROM messages WHERE conversation_id = $1 AND id {cond} $2 ORDER BY id {order} LIMIT $3"
    );
    Ok(run!(ex, x => sqlx::query_as(&sql).bind(conv).bind(bound).bind(fetch_limit(limit)).fetch_all(x).await)?)
}

/// Records a message's media at `position`.
pub async fn insert_message_media(ex: Ex<'_>, message: Id, media: Id, position: i32) -> StoreResult<()> {
    let sql = "INSERT INTO message_media (message_id, media_id, position) VALUES ($1, $2, $3)";
    exec!(ex, x => sqlx::query(sql).bind(message).bind(media).bind(position).execute(x).await)?;
    Ok(())
}

/// Removes a message's media links; returns the media ids.
pub async fn take_message_media(ex: Ex<'_>, message: Id) -> StoreResult<Vec<Id>> {
    let sql = "DELETE FROM message_media WHERE message_id = $1 RETURNING media_id";
    Ok(run!(ex, x => sqlx::query_scalar(sql).bind(message).fetch_all(x).await)?)
}

/// `(message, media)` links of several messages, in position order.
pub async fn media_of(ex: Ex<'_>, messages: &[Id]) -> StoreResult<Vec<(Id, Id)>> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT message_id, media_id FROM message_media WHERE message_id IN ({}) ORDER BY message_id, position",
        in_list(messages)
    );
    Ok(run!(ex, x => sqlx::query_as(&sql).fetch_all(x).await)?)
}

/// A `conversation_requests` row: consent not given yet.
#[derive(Clone, Debug, FromRow)]
pub struct RequestRow {
    /// The conversation.
    pub conversation_id: Id,
    /// Who is asked.
    pub user_id: Id,
    /// Who asked (opened the direct conversation, or added them to the group).
    pub invited_by: Id,
    /// Asked.
    pub created_at: Timestamp,
    /// Declined (hidden), if so.
    pub declined_at: Option<Timestamp>,
}

const REQ_COLS: &str = "conversation_id, user_id, invited_by, created_at, declined_at";

/// Records a request; `false` when there is one already (declined ones included).
pub async fn insert_request(ex: Ex<'_>, conv: Id, user: Id, by: Id, now: Timestamp) -> StoreResult<bool> {
    let sql = "INSERT INTO conversation_requests (conversation_id, user_id, invited_by, created_at) \
               VALUES ($1, $2, $3, $4) ON CONFLICT (conversation_id, user_id) DO NOTHING";
    Ok(exec!(ex, c => sqlx::query(sql).bind(conv).bind(user).bind(by).bind(now).execute(c).await)? == 1)
}

/// `user`'s request in `conv`, declined or not.
pub async fn request(ex: Ex<'_>, conv: Id, user: Id) -> StoreResult<Option<RequestRow>> {
    let sql = format!("SELECT {REQ_COLS} FROM conversation_requests WHERE conversation_id = $1 AND user_id = $2");
    Ok(run!(ex, c => sqlx::query_as::<_, RequestRow>(&sql).bind(conv).bind(user).fetch_optional(c).await)?)
}

/// `user`'s open (not declined) requests, newest first, before the cursor conversation.
pub async fn open_requests(ex: Ex<'_>, user: Id, before: Option<Id>, limit: i64) -> StoreResult<Vec<RequestRow>> {
    let sql = format!(
        "SELECT {REQ_COLS} FROM conversation_requests \
         WHERE user_id = $1 AND declined_at IS NULL AND ($2 IS NULL OR conversation_id < $2) \
         ORDER BY conversation_id DESC LIMIT $3"
    );
    let before = before.map(|b| b.0);
    Ok(run!(ex, c => sqlx::query_as::<_, RequestRow>(&sql).bind(user).bind(before).bind(limit).fetch_all(c).await)?)
}

/// The users asked in `convs` (declined ones too: the sender is not told of a decline):
/// `(conversation, user)`.
pub async fn requested_in(ex: Ex<'_>, convs: &[Id]) -> StoreResult<Vec<(Id, Id)>> {
    if convs.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT conversation_id, user_id FROM conversation_requests WHERE conversation_id IN ({})",
        in_list(convs)
    );
    Ok(run!(ex, c => sqlx::query_as(&sql).fetch_all(c).await)?)
}

/// Removes a request (accepted).
pub async fn delete_request(ex: Ex<'_>, conv: Id, user: Id) -> StoreResult<bool> {
    let sql = "DELETE FROM conversation_requests WHERE conversation_id = $1 AND user_id = $2";
    Ok(exec!(ex, c => sqlx::query(sql).bind(conv).bind(user).execute(c).await)? == 1)
}

/// Declines a request: it stays, hidden.
pub async fn decline_request(ex: Ex<'_>, conv: Id, user: Id, now: Timestamp) -> StoreResult<bool> {
    let sql = "UPDATE conversation_requests SET declined_at = $3 \
               WHERE conversation_id = $1 AND user_id = $2 AND declined_at IS NULL";
    Ok(exec!(ex, c => sqlx::query(sql).bind(conv).bind(user).bind(now).execute(c).await)? == 1)
}
