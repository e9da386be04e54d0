//! Visibility: the one place that decides who may see what (placeholder until the social
//! core lands: personal topics are their owner's, users' topics are public).

use crate::domain::Id;
use crate::error::{AppError, AppResult};
use crate::events::Topic;
use crate::state::AppState;

/// Whether `viewer` may subscribe to `topic`.
pub async fn authorize_topic(_state: &AppState, viewer: Id, topic: &Topic) -> AppResult<()> {
    match *topic {
        Topic::Feed(u) | Topic::Follower(u) | Topic::Notification(u) | Topic::Image(u) if u == viewer => Ok(()),
        Topic::Feed(_) | Topic::Follower(_) | Topic::Notification(_) | Topic::Image(_) => {
            Err(AppError::Forbidden("not your topic"))
        }
        Topic::User(_) | Topic::Post(_) | Topic::Presence(_) => Ok(()),
        Topic::Chat(_) => Err(AppError::Forbidden("not a member of this conversation")),
        Topic::Control(_) => Err(AppError::Forbidden("internal topic")),
    }
}
