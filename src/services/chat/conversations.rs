//! Conversations: opening direct ones, creating, renaming and changing groups.

use super::*;

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
                let asked = store::request(c.ex(), existing.id, me).await?;
                drop(c);
                // Opening the conversation someone asked me into is accepting it.
                if asked.is_some() {
                    return Ok((accept(state, me, existing.id).await?, false));
                }
                return Ok((view_conversation(state, me, existing).await?, false));
            }
            // Outside the other's `who_can_message`, it opens as a request: they are asked,
            // not made a member, and hear nothing until they accept.
            let default = state.config.default_who_can_message;
            let consents = access::consenting(tx.ex(), default, me, &[other.id]).await?.contains(&other.id);
            let mut events = EventBatch::new();
            store::insert_member(tx.ex(), id, me, MEMBER, now).await?;
            if consents {
                store::insert_member(tx.ex(), id, other.id, MEMBER, now).await?;
                announce_members(&mut tx, &mut events, id, &[me, other.id]).await?;
            } else {
                store::insert_request(tx.ex(), id, other.id, me, now).await?;
                announce_members(&mut tx, &mut events, id, &[me]).await?;
            }
            state.commit(tx, events).await?;
            Ok((get(state, me, id).await?, true))
        }
        NewConversation::Group { title, member_ids } => {
            state.limits.write(Write::Group, me).await?;
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
            let (joined, invited) = split_by_consent(state, &mut tx, me, &ids).await?;
            for u in &joined {
                store::insert_member(tx.ex(), id, *u, MEMBER, now).await?;
            }
            for u in &invited {
                store::insert_request(tx.ex(), id, *u, me, now).await?;
            }
            let mut everyone = vec![me];
            everyone.extend(&joined);
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
    let (joined, invited) = split_by_consent(state, &mut tx, me, &ids).await?;
    for u in &joined {
        if store::insert_member(tx.ex(), id, *u, MEMBER, now).await? {
            added.push(*u);
        }
    }
    for u in &invited {
        if store::member(tx.ex(), id, *u).await?.is_none() {
            store::insert_request(tx.ex(), id, *u, me, now).await?;
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

/// Splits people being added to a group by `me` into those who let `me` (they join) and
/// those who must accept an invitation first.
async fn split_by_consent(state: &AppState, tx: &mut Tx, me: Id, ids: &[Id]) -> AppResult<(Vec<Id>, Vec<Id>)> {
    let ok = access::consenting(tx.ex(), state.config.default_who_can_message, me, ids).await?;
    Ok(ids.iter().partition(|u| ok.contains(u)))
}

/// `member.added` for each new member, and their sessions told to pick the conversation up
/// from that event on.
pub(super) async fn announce_members(tx: &mut Tx, events: &mut EventBatch, id: Id, users: &[Id]) -> AppResult<()> {
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

// ---- requests and invitations -------------------------------------------------------------

/// A conversation someone asked me into.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ConversationRequest {
    /// `message` (a direct conversation) or `invitation` (a group).
    pub kind: &'static str,
    /// Who asked.
    pub from: UserSummary,
    /// Asked.
    pub created_at: Timestamp,
    /// The conversation, with its latest message: what the request says.
    pub conversation: ConversationView,
}

/// My open message requests and group invitations, newest first (declined ones are gone).
pub async fn requests(state: &AppState, me: Id, q: &PageQuery) -> AppResult<Page<ConversationRequest>> {
    let page = q.parse::<Id>()?;
    let mut c = state.store.conn().await?;
    let rows = store::open_requests(c.ex(), me, page.after, crate::store::fetch_limit(page.limit)).await?;
    drop(c);
    let page = Page::from_rows(rows, page.limit, |r| r.conversation_id);
    // Someone blocked either way since asking is not shown (nor may be accepted).
    let mut rows = access::filter_blocked(state, Some(me), page.items, |r| r.invited_by).await?;
    let mut c = state.store.conn().await?;
    let ids: Vec<Id> = rows.iter().map(|r| r.conversation_id).collect();
    let mut found: HashMap<Id, ConversationRow> =
        store::get_conversations(c.ex(), &ids).await?.into_iter().map(|v| (v.id, v)).collect();
    // Requests and their conversations stay paired, in the page's order.
    rows.retain(|r| found.contains_key(&r.conversation_id));
    let convs: Vec<ConversationRow> = rows.iter().filter_map(|r| found.remove(&r.conversation_id)).collect();
    let from: HashMap<Id, UserSummary> =
        user_store::get_many(c.ex(), &rows.iter().map(|r| r.invited_by).collect::<Vec<_>>())
            .await?
            .iter()
            .map(|u| (u.id, UserSummary::from(u)))
            .collect();
    drop(c);
    let views = views_of_conversations(state, me, convs).await?;
    let items = rows
        .into_iter()
        .zip(views)
        .filter_map(|(r, v)| {
            Some(ConversationRequest {
                kind: if v.kind == DIRECT { "message" } else { "invitation" },
                from: from.get(&r.invited_by)?.clone(),
                created_at: r.created_at,
                conversation: v,
            })
        })
        .collect();
    Ok(Page { items, next_cursor: page.next_cursor })
}

/// Accepts a message request or a group invitation: I become a member (`member.added`, my
/// sockets join the topic) and from now on hear of its messages. `404` when I was not asked,
/// or whoever asked is blocked either way with me.
pub async fn accept(state: &AppState, me: Id, id: Id) -> AppResult<ConversationView> {
    let mut tx = state.store.begin().await?;
    let conv = store::get_conversation(tx.ex(), id, Some(RowLock::NoKeyUpdate)).await?.ok_or(AppError::NotFound)?;
    let asked = store::request(tx.ex(), id, me).await?.ok_or(AppError::NotFound)?;
    access::not_blocked(tx.ex(), me, asked.invited_by).await?;
    if conv.kind == GROUP && store::members_of(tx.ex(), &[id]).await?.len() >= MAX_GROUP_MEMBERS {
        return Err(AppError::conflict(format!("the group is full ({MAX_GROUP_MEMBERS} members)")));
    }
    store::delete_request(tx.ex(), id, me).await?;
    store::insert_member(tx.ex(), id, me, MEMBER, Timestamp::now()).await?;
    let mut events = EventBatch::new();
    announce_members(&mut tx, &mut events, id, &[me]).await?;
    state.commit(tx, events).await?;
    get(state, me, id).await
}

/// Declines a message request or a group invitation: it is hidden and does not come back;
/// nobody is blocked and nobody is told. `404` when there is none open.
pub async fn decline(state: &AppState, me: Id, id: Id) -> AppResult<()> {
    let mut tx = state.store.begin().await?;
    if !store::decline_request(tx.ex(), id, me, Timestamp::now()).await? {
        return Err(AppError::NotFound);
    }
    state.commit(tx, EventBatch::new()).await?;
    Ok(())
}
