//! Conversations and messages as clients see them, built with a fixed number of queries.

use super::*;

pub(super) async fn view_conversation(state: &AppState, me: Id, conv: ConversationRow) -> AppResult<ConversationView> {
    Ok(views_of_conversations(state, me, vec![conv]).await?.pop().expect("one in, one out"))
}

pub(super) async fn views_of_conversations(
    state: &AppState,
    me: Id,
    convs: Vec<ConversationRow>,
) -> AppResult<Vec<ConversationView>> {
    let ids: Vec<Id> = convs.iter().map(|c| c.id).collect();
    let mut c = state.store.conn().await?;
    let members = store::members_of(c.ex(), &ids).await?;
    let requested = store::requested_in(c.ex(), &ids).await?;
    let unread: HashMap<Id, i64> = store::unread_counts(c.ex(), me, Some(&ids)).await?.into_iter().collect();
    let last_ids: Vec<Id> = convs.iter().filter_map(|c| c.last_message_id).collect();
    let mut last_rows = store::get_messages(c.ex(), &last_ids).await?;
    // As in the history: a suspended (or erased) sender's live message is not shown.
    let senders: Vec<Id> = last_rows.iter().filter(|m| !m.deleted).map(|m| m.sender_id).collect();
    let hidden: HashSet<Id> = user_store::suspended_among(c.ex(), &senders).await?.into_iter().collect();
    last_rows.retain(|m| m.deleted || !hidden.contains(&m.sender_id));
    let mut user_ids: Vec<Id> = members.iter().map(|m| m.user_id).chain(requested.iter().map(|r| r.1)).collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    let users: HashMap<Id, UserSummary> =
        user_store::get_many(c.ex(), &user_ids).await?.iter().map(|u| (u.id, UserSummary::from(u))).collect();
    let last: HashMap<Id, MessageView> =
        views_of_messages(state, c.ex(), last_rows).await?.into_iter().map(|m| (m.conversation_id, m)).collect();
    drop(c);
    let mut asked: HashMap<Id, Vec<UserSummary>> = HashMap::new();
    for (conv, user) in requested {
        if let Some(u) = users.get(&user) {
            asked.entry(conv).or_default().push(u.clone());
        }
    }
    let muted: HashSet<Id> = members.iter().filter(|m| m.user_id == me && m.muted).map(|m| m.conversation_id).collect();
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
            requested: asked.remove(&c.id).unwrap_or_default(),
            last_message: last.get(&c.id).cloned(),
            unread_count: unread.get(&c.id).copied().unwrap_or(0),
            muted: muted.contains(&c.id),
            created_at: c.created_at,
            last_activity_at: c.last_activity_at,
        })
        .collect())
}

pub(super) async fn view_message(state: &AppState, ex: Ex<'_>, row: MessageRow) -> AppResult<MessageView> {
    Ok(views_of_messages(state, ex, vec![row]).await?.pop().expect("one in, one out"))
}

/// A message the send path has just stored, as clients see it, read through the sending
/// transaction. It can have no reactions yet and its media are the ones just attached, in
/// the order given, so only the sender (and the media, if any) are read: two round trips
/// fewer inside the send transaction than [`view_message`].
pub(super) async fn view_new_message(
    state: &AppState,
    mut ex: Ex<'_>,
    row: MessageRow,
    media_ids: &[Id],
) -> AppResult<MessageView> {
    let sender = user_store::get_many(ex.reborrow(), &[row.sender_id]).await?;
    let sender = sender.first().map(UserSummary::from).ok_or(AppError::NotFound)?;
    let mut media = media_svc::message_views(state, ex, media_ids).await?;
    let media = media_ids.iter().filter_map(|id| media.remove(id)).collect();
    Ok(assemble(row, sender, media, Counts::default()))
}

/// Messages as clients see them, read through `ex`: a connection, or the transaction that
/// is writing them (a message it stores or edits is not committed yet).
pub(super) async fn views_of_messages(
    state: &AppState,
    mut ex: Ex<'_>,
    rows: Vec<MessageRow>,
) -> AppResult<Vec<MessageView>> {
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

pub(super) fn assemble(
    r: MessageRow,
    sender: UserSummary,
    media: Vec<MediaView>,
    reaction_counts: Counts,
) -> MessageView {
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
