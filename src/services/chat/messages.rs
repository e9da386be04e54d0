//! Messages: sending (idempotently), history, edits, deletion, reactions.

use super::*;

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
    // A retry answers from what is stored — to a member only — before any other check
    // (a block since) could now refuse it: it is the sender's own message.
    if let Some(c) = client_id {
        membership(state, me, id).await?;
        if let Some(message) = stored_retry(state, me, id, c).await? {
            return Ok(Sent { message, created: false });
        }
    }
    // Only a new message counts (a retry above is answered from what is stored).
    access::may_write(state, me).await?;
    state.limits.write(Write::Message, me).await?;
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
    let message = view_new_message(state, tx.ex(), row, &req.media_ids).await?;
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
    let (conv, _) = membership(state, me, id).await?;
    let mut c = state.store.conn().await?;
    let mut rows = store::history(c.ex(), id, q.before, q.after, limit).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(|r| r.id.to_string()) } else { None };
    let items = views_of_messages(state, c.ex(), rows).await?;
    drop(c);
    // In a group, as live: the messages of an account blocked either way are not shown (a
    // page may come out short; the cursor still moves past them). A direct conversation's
    // history stays whole (it is the two members' own), but for a suspended sender's.
    // Tombstones stay either way (a deleted account's messages read as "Deleted account").
    let sender = |m: &MessageView| if m.deleted { Id(0) } else { m.sender.id };
    let items = if conv.kind == GROUP {
        access::filter_blocked(state, Some(me), items, sender).await?
    } else {
        access::filter_suspended(state, items, sender).await?
    };
    Ok(Page { items, next_cursor })
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
    tombstone(state, tx, row).await
}

/// Removes message `msg` for everyone — by its sender or a moderator alike: a tombstone
/// stays, its media are deleted durably, `message.deleted` reaches the conversation.
/// `404` when it is already gone.
pub async fn remove_message(state: &AppState, msg: Id) -> AppResult<()> {
    let mut tx = state.store.begin().await?;
    let row = store::get_message(tx.ex(), msg, Some(RowLock::Update)).await?.ok_or(AppError::NotFound)?;
    if row.deleted {
        return Err(AppError::NotFound);
    }
    tombstone(state, tx, row).await
}

async fn tombstone(state: &AppState, mut tx: Tx, row: MessageRow) -> AppResult<()> {
    let (msg, me) = (row.id, row.sender_id);
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

/// A message as a member reporting it sees it, with its sender: `404` unless `me` is a
/// member of its conversation and it is not deleted.
pub async fn reported_message(state: &AppState, me: Id, msg: Id) -> AppResult<MessageView> {
    let mut c = state.store.conn().await?;
    let row = store::get_message(c.ex(), msg, None).await?.filter(|m| !m.deleted).ok_or(AppError::NotFound)?;
    // A member, or the one a message request asks (the request's spam is theirs to report).
    if store::member(c.ex(), row.conversation_id, me).await?.is_none()
        && store::request(c.ex(), row.conversation_id, me).await?.is_none()
    {
        return Err(AppError::NotFound);
    }
    views_of_messages(state, c.ex(), vec![row]).await?.pop().ok_or(AppError::NotFound)
}
