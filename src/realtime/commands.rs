//! Socket actions handled by services (`chat.send`, `chat.typing`, `chat.read`), shared by
//! both doors, and the topics a user watches because of what they belong to (their
//! conversations). Replies carry the same error codes as REST.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::domain::Id;
use crate::error::{AppError, AppResult};
use crate::events::Topic;
use crate::services::chat::{self, MarkRead, SendMessage};
use crate::state::AppState;

/// Runs action `op` for `user`; `None` when no such action exists.
pub async fn action(state: &AppState, user: Id, op: &str, data: Option<&RawValue>) -> Option<AppResult<Value>> {
    Some(match op {
        "chat.send" => send(state, user, data).await,
        "chat.typing" => typing(state, user, data).await,
        "chat.read" => read(state, user, data).await,
        _ => {
            tracing::debug!(op, "no such socket action");
            return None;
        }
    })
}

async fn send(state: &AppState, user: Id, data: Option<&RawValue>) -> AppResult<Value> {
    let req: SendMessage = parse(data)?;
    let conv = req.conversation_id.ok_or_else(|| AppError::field("conversation_id", "is required"))?;
    let sent = chat::send(state, user, conv, req).await?;
    Ok(serde_json::to_value(sent.message).expect("messages serialise"))
}

async fn typing(state: &AppState, user: Id, data: Option<&RawValue>) -> AppResult<Value> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Typing {
        conversation_id: Id,
    }
    let t: Typing = parse(data)?;
    chat::typing(state, user, t.conversation_id).await
}

async fn read(state: &AppState, user: Id, data: Option<&RawValue>) -> AppResult<Value> {
    let req: MarkRead = parse(data)?;
    let conv = req.conversation_id.ok_or_else(|| AppError::field("conversation_id", "is required"))?;
    let receipt = chat::mark_read(state, user, conv, req).await?;
    Ok(serde_json::to_value(receipt).expect("receipts serialise"))
}

/// Decodes an action's `data` with the error shape of REST bodies.
fn parse<T: DeserializeOwned>(data: Option<&RawValue>) -> AppResult<T> {
    let raw = data.ok_or_else(|| AppError::field("data", "is required"))?;
    if crate::domain::json::has_nul(raw.get().as_bytes()) {
        return Err(AppError::BadRequest("text must not contain NUL characters".into()));
    }
    serde_json::from_str(raw.get()).map_err(|e| AppError::BadRequest(format!("invalid data: {e}")))
}

/// The conversations `user` belongs to, as topics (subscribed on connect).
pub async fn conversation_topics(state: &AppState, user: Id) -> Vec<Topic> {
    match chat::memberships(state, user).await {
        Ok(m) => m.into_iter().map(|(t, _)| t).take(crate::realtime::session::MAX_CONVERSATION_SUBSCRIPTIONS).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "reading conversations failed");
            Vec::new()
        }
    }
}
