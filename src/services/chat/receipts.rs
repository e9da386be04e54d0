//! Receipts, unread counts and typing.

use super::*;

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
