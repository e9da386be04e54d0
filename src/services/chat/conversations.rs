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
