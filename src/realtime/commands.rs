//! Socket actions handled by services (`chat.send`, `chat.typing`, `chat.read`, …), shared by
//! both doors, and the topics a user watches because of what they belong to (their
//! conversations). Replies carry the same error codes as REST.

use serde_json::Value;
use serde_json::value::RawValue;

use crate::domain::Id;
use crate::error::AppResult;
use crate::events::Topic;
use crate::state::AppState;

/// Runs action `op` for `user`; `None` when no such action exists. (The chat area adds
/// `chat.send`, `chat.typing` and `chat.read` here.)
pub async fn action(_state: &AppState, _user: Id, op: &str, _data: Option<&RawValue>) -> Option<AppResult<Value>> {
    tracing::debug!(op, "no such socket action");
    None
}

/// The conversations `user` belongs to, as topics (subscribed on connect).
pub async fn conversation_topics(_state: &AppState, _user: Id) -> Vec<Topic> {
    Vec::new()
}
