//! `/conversations…` and `/messages/{id}…`: chat over REST (the socket's `chat.send`,
//! `chat.read` and `chat.typing` run the same services).

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{AppJson, AppPath, AppQuery};
use crate::auth::AuthUser;
use crate::domain::Id;
use crate::error::{AppResult, ErrorBody};
use crate::pagination::{Page, PageQuery};
use crate::services::chat::{
    self as svc, AddMembers, ConversationPatch, ConversationRequest, ConversationView, EditMessage, HistoryQuery,
    MarkRead, MessageView, NewConversation, Receipt, SendMessage, UnreadCounts,
};
use crate::services::reactions::{self as reactions, ReactionSummary, SetReaction};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_conversation, list_conversations))
        .routes(routes!(unread_counts))
        .routes(routes!(conversation_requests))
        .routes(routes!(accept_request))
        .routes(routes!(decline_request))
        .routes(routes!(get_conversation, update_conversation))
        .routes(routes!(add_members))
        .routes(routes!(remove_member))
        .routes(routes!(send_message, history))
        .routes(routes!(mark_read))
        .routes(routes!(mute, unmute))
        .routes(routes!(edit_message, delete_message))
        .routes(routes!(react_to_message, unreact_to_message))
}

/// Open a direct conversation (idempotent: the pair's existing one answers `200`) or create
/// a group.
#[utoipa::path(post, path = "/conversations", tag = "chat", security(("bearer" = [])), request_body = NewConversation,
    responses(
        (status = 201, description = "Created", body = ConversationView),
        (status = 200, description = "The pair's existing direct conversation", body = ConversationView),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such user (or blocked)", body = ErrorBody),
        (status = 422, description = "Invalid title or members", body = ErrorBody),
    ))]
async fn create_conversation(
    State(state): State<AppState>,
    me: AuthUser,
    AppJson(req): AppJson<NewConversation>,
) -> AppResult<(StatusCode, AppJson<ConversationView>)> {
    let (view, created) = svc::create(&state, me.id, req).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, AppJson(view)))
}

/// My conversations, most recently active first, each with its last message and my unread
/// count.
#[utoipa::path(get, path = "/conversations", tag = "chat", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of conversations", body = Page<ConversationView>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Bad cursor or limit", body = ErrorBody),
    ))]
async fn list_conversations(
    State(state): State<AppState>,
    me: AuthUser,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<AppJson<Page<ConversationView>>> {
    Ok(AppJson(svc::list(&state, me.id, &q).await?))
}

/// My unread messages, per conversation and in total (the same on every device).
#[utoipa::path(get, path = "/conversations/unread-count", tag = "chat", security(("bearer" = [])),
    responses(
        (status = 200, description = "Unread counts", body = UnreadCounts),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
async fn unread_counts(State(state): State<AppState>, me: AuthUser) -> AppResult<AppJson<UnreadCounts>> {
    Ok(AppJson(svc::unread(&state, me.id).await?))
}

/// One of my conversations.
#[utoipa::path(get, path = "/conversations/{id}", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such conversation, or not a member", body = ErrorBody),
    ))]
async fn get_conversation(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<AppJson<ConversationView>> {
    Ok(AppJson(svc::get(&state, me.id, id).await?))
}

/// Rename a group (admins).
#[utoipa::path(patch, path = "/conversations/{id}", tag = "chat", security(("bearer" = [])),
    request_body = ConversationPatch, params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such conversation, or not a member", body = ErrorBody),
        (status = 422, description = "Invalid title, or not a group", body = ErrorBody),
    ))]
async fn update_conversation(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
    AppJson(req): AppJson<ConversationPatch>,
) -> AppResult<AppJson<ConversationView>> {
    Ok(AppJson(svc::update(&state, me.id, id, req).await?))
}

/// Add members to a group (admins).
#[utoipa::path(post, path = "/conversations/{id}/members", tag = "chat", security(("bearer" = [])),
    request_body = AddMembers, params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such conversation, or not a member", body = ErrorBody),
        (status = 422, description = "Unknown users, too many members, or not a group", body = ErrorBody),
    ))]
async fn add_members(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
    AppJson(req): AppJson<AddMembers>,
) -> AppResult<AppJson<ConversationView>> {
    Ok(AppJson(svc::add_members(&state, me.id, id, req).await?))
}

/// Leave a group (my own id) or remove a member (admins). The last admin leaving promotes
/// the longest-standing member.
#[utoipa::path(delete, path = "/conversations/{id}/members/{user}", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id"), ("user" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Removing someone else without being an admin", body = ErrorBody),
        (status = 404, description = "No such conversation or member", body = ErrorBody),
        (status = 422, description = "A direct conversation", body = ErrorBody),
    ))]
async fn remove_member(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath((id, user)): AppPath<(Id, Id)>,
) -> AppResult<StatusCode> {
    svc::remove_member(&state, me.id, id, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a message. With `client_msg_id`, a retry answers `200` with the stored message and
/// stores nothing new.
#[utoipa::path(post, path = "/conversations/{id}/messages", tag = "chat", security(("bearer" = [])),
    request_body = SendMessage, params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 201, description = "Stored and published", body = MessageView),
        (status = 200, description = "A retry: the message stored before", body = MessageView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "A direct conversation with a block between the two", body = ErrorBody),
        (status = 404, description = "No such conversation, or not a member", body = ErrorBody),
        (status = 422, description = "Empty or too long, bad media or reply, or a body `conversation_id` other than the path's", body = ErrorBody),
    ))]
async fn send_message(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
    AppJson(req): AppJson<SendMessage>,
) -> AppResult<(StatusCode, AppJson<MessageView>)> {
    let sent = svc::send(&state, me.id, id, req).await?;
    Ok((if sent.created { StatusCode::CREATED } else { StatusCode::OK }, AppJson(sent.message)))
}

/// History: `before` a message id (newest first; the default starts at the newest) or
/// `after` one (oldest first). `next_cursor` continues in the same direction.
#[utoipa::path(get, path = "/conversations/{id}/messages", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id"), HistoryQuery),
    responses(
        (status = 200, description = "A page of messages", body = Page<MessageView>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such conversation, or not a member", body = ErrorBody),
        (status = 422, description = "Bad cursor or limit", body = ErrorBody),
    ))]
async fn history(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
    AppQuery(q): AppQuery<HistoryQuery>,
) -> AppResult<AppJson<Page<MessageView>>> {
    Ok(AppJson(svc::history(&state, me.id, id, &q).await?))
}

/// Move my read (or delivered) receipt forward; the other members and my other devices get
/// a `read` event.
#[utoipa::path(post, path = "/conversations/{id}/read", tag = "chat", security(("bearer" = [])),
    request_body = MarkRead, params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The receipt", body = Receipt),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "A direct conversation with a block between the two: a block ends every interaction in it", body = ErrorBody),
        (status = 404, description = "No such conversation, or not a member", body = ErrorBody),
        (status = 422, description = "Not a message of this conversation, or a body `conversation_id` other than the path's", body = ErrorBody),
    ))]
async fn mark_read(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
    AppJson(req): AppJson<MarkRead>,
) -> AppResult<AppJson<Receipt>> {
    Ok(AppJson(svc::mark_read(&state, me.id, id, req).await?))
}

/// Mute a conversation for me: its messages keep arriving and counting as unread, but
/// notify me of nothing (in the app, by e-mail or by push). Idempotent.
#[utoipa::path(put, path = "/conversations/{id}/mute", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 204, description = "Muted"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such conversation, or not a member", body = ErrorBody),
    ))]
async fn mute(State(state): State<AppState>, me: AuthUser, AppPath(id): AppPath<Id>) -> AppResult<StatusCode> {
    svc::set_muted(&state, me.id, id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unmute a conversation for me. Idempotent.
#[utoipa::path(delete, path = "/conversations/{id}/mute", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 204, description = "Not muted"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such conversation, or not a member", body = ErrorBody),
    ))]
async fn unmute(State(state): State<AppState>, me: AuthUser, AppPath(id): AppPath<Id>) -> AppResult<StatusCode> {
    svc::set_muted(&state, me.id, id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Edit my message.
#[utoipa::path(patch, path = "/messages/{id}", tag = "chat", security(("bearer" = [])),
    request_body = EditMessage, params(("id" = String, Path, description = "Message id")),
    responses(
        (status = 200, description = "The edited message", body = MessageView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Someone else's message, or a direct conversation with a block between the two", body = ErrorBody),
        (status = 404, description = "No such message (or deleted, or not a member)", body = ErrorBody),
        (status = 422, description = "Empty or too long", body = ErrorBody),
    ))]
async fn edit_message(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
    AppJson(req): AppJson<EditMessage>,
) -> AppResult<AppJson<MessageView>> {
    Ok(AppJson(svc::edit_message(&state, me.id, id, req).await?))
}

/// Delete my message for everyone (a tombstone stays in the history).
#[utoipa::path(delete, path = "/messages/{id}", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Someone else's message", body = ErrorBody),
        (status = 404, description = "No such message (or deleted, or not a member)", body = ErrorBody),
    ))]
async fn delete_message(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<StatusCode> {
    svc::delete_message(&state, me.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set or switch my reaction on a message (the reaction types of posts).
#[utoipa::path(put, path = "/messages/{id}/reaction", tag = "chat", security(("bearer" = [])),
    request_body = SetReaction, params(("id" = String, Path, description = "Message id")),
    responses(
        (status = 200, description = "Counts after the change", body = ReactionSummary),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "A direct conversation with a block between the two: a block ends every interaction in it", body = ErrorBody),
        (status = 404, description = "No such message (or deleted, or not a member)", body = ErrorBody),
        (status = 422, description = "Unknown or disabled reaction type", body = ErrorBody),
    ))]
async fn react_to_message(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
    AppJson(req): AppJson<SetReaction>,
) -> AppResult<AppJson<ReactionSummary>> {
    Ok(AppJson(reactions::react_to_message(&state, me.id, id, Some(req)).await?))
}

/// Remove my reaction from a message.
#[utoipa::path(delete, path = "/messages/{id}/reaction", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id")),
    responses(
        (status = 200, description = "Counts after the change", body = ReactionSummary),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "A direct conversation with a block between the two: a block ends every interaction in it", body = ErrorBody),
        (status = 404, description = "No such message (or deleted, or not a member)", body = ErrorBody),
    ))]
async fn unreact_to_message(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<AppJson<ReactionSummary>> {
    Ok(AppJson(reactions::react_to_message(&state, me.id, id, None).await?))
}

/// My message requests (direct conversations opened by someone outside my
/// `who_can_message`) and group invitations, newest first. They are not in my inbox, and I
/// hear nothing of them, until I accept.
#[utoipa::path(get, path = "/conversations/requests", tag = "chat", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of requests", body = Page<ConversationRequest>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Bad cursor or limit", body = ErrorBody),
    ))]
async fn conversation_requests(
    State(state): State<AppState>,
    me: AuthUser,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<AppJson<Page<ConversationRequest>>> {
    Ok(AppJson(svc::requests(&state, me.id, &q).await?))
}

/// Accept a message request or a group invitation: the conversation moves to my inbox.
#[utoipa::path(post, path = "/conversations/{id}/accept", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "I am a member now", body = ConversationView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No request of mine there (or its sender is blocked)", body = ErrorBody),
        (status = 409, description = "The group is full", body = ErrorBody),
    ))]
async fn accept_request(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<AppJson<ConversationView>> {
    Ok(AppJson(svc::accept(&state, me.id, id).await?))
}

/// Decline a message request or a group invitation: it is hidden for good; nobody is
/// blocked or told.
#[utoipa::path(post, path = "/conversations/{id}/decline", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 204, description = "Declined"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No open request of mine there", body = ErrorBody),
    ))]
async fn decline_request(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<StatusCode> {
    svc::decline(&state, me.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
