//! Reading notifications and marking them read.

use super::*;

/// The caller's notifications, most recently updated first.
pub async fn list(state: &AppState, me: Id, q: &NotificationQuery) -> AppResult<Page<NotificationView>> {
    let p = PageQuery { cursor: q.cursor.clone(), limit: q.limit }.parse::<(i64, Id)>()?;
    let mut c = state.store.conn().await?;
    let rows = store::page(c.ex(), me, q.unread_only.unwrap_or(false), p.after, p.limit).await?;
    let page = Page::from_rows(rows, p.limit, |r| (r.updated_at.0, r.id));
    let items = views(c.ex(), page.items).await.map_err(AppError::Internal)?;
    Ok(Page { items, next_cursor: page.next_cursor })
}

/// The caller's unread count.
pub async fn unread_count(state: &AppState, me: Id) -> AppResult<UnreadCount> {
    let mut c = state.store.conn().await?;
    Ok(UnreadCount { count: store::unread_count(c.ex(), me).await? })
}

/// Marks one of the caller's notifications read (idempotent); tells their other sockets.
pub async fn mark_read(state: &AppState, me: Id, id: Id) -> AppResult<()> {
    let mut tx = state.store.begin().await?;
    match store::mark_read(tx.ex(), me, id).await? {
        None => Err(AppError::NotFound),
        Some(false) => Ok(()),
        Some(true) => {
            let mut events = EventBatch::new();
            let data = NotificationsRead::Ids { ids: vec![id] };
            events.add(&mut tx, &[Topic::Notification(me)], EventName::NotificationsRead, &data).await?;
            state.commit(tx, events).await?;
            Ok(())
        }
    }
}

/// Marks all of the caller's notifications read; tells their other sockets.
pub async fn mark_all_read(state: &AppState, me: Id) -> AppResult<()> {
    let mut tx = state.store.begin().await?;
    if store::mark_all_read(tx.ex(), me).await? == 0 {
        return Ok(());
    }
    let mut events = EventBatch::new();
    let data = NotificationsRead::All { all: true };
    events.add(&mut tx, &[Topic::Notification(me)], EventName::NotificationsRead, &data).await?;
    state.commit(tx, events).await?;
    Ok(())
}
