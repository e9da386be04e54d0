//! Notifications: what creates them, how they group, and the channels that deliver them.
//!
//! # Creation is a durable job
//! The services that cause a notification (follow, approve, react, comment, mention in a post
//! or comment, and chat through [`message_sent`]) only [`enqueue`] a [`Notify`] job *in
//! their own transaction*: a request never waits for notification work, and the job exists
//! exactly when the change committed (no lost, no phantom notification). The job handler
//! ([`run_notify`]) does the rest in one transaction of its own, completed with
//! [`jobs::complete_within`] so a retried job never notifies twice:
//! 1. re-reads the source (the follow, reaction, comment, post): if it is gone meanwhile,
//!    nothing is created;
//! 2. decides the recipients and drops the actor themself, anyone who blocked or was
//!    blocked by the actor, anyone who muted the actor, and anyone who may no longer see
//!    the post concerned; for chat messages, anyone with an open socket on any instance
//!    (they see the message live) and anyone who muted the conversation;
//! 3. delivers through each [`Channel`] the recipient enabled for that kind
//!    (`PUT /users/me/settings`, per-kind `in_app`, `email` and `push`).
//!
//! # Grouping
//! A recipient has at most one *unread* notification per `(kind, target)`: further actors
//! join it (`actor_count`, latest actors first) instead of adding rows, so a popular post
//! yields "alice and 41 others reacted to your post". Chat messages group per conversation
//! while unread. Reading a notification closes its group; the next action starts a new
//! one. An actor already counted for a target (read or not) is never counted again, so
//! switching a reaction type or a retried job changes nothing.
//!
//! # When the source goes away
//! Deleting a post or a comment deletes its notifications (foreign keys with `ON DELETE
//! CASCADE`; a comment turned into a tombstone is handled explicitly). A removed reaction
//! or withdrawn follow takes its actor out of the group (which goes when it was the last
//! actor); a declined request deletes its notification; a block takes each side out of the
//! other's notifications. These run in the transaction of the change itself.
//!
//! # Channels
//! [`Channel::InApp`] stores the notification and publishes `notification.created` on the
//! recipient's durable `notification` topic (stored with a `seq` in the same transaction, so
//! a client that was away resumes it). [`Channel::Email`] enqueues the existing
//! `SendEmail` job (retries with backoff, dead letters) — once per new notification, never
//! for an actor merely joining a group (with `in_app` off for a kind there is no group, so
//! each such event is e-mailed on its own). [`Channel::Push`] enqueues one `SendPush` job per
//! registered device (`services::push`) for a new notification *and* for each actor joining
//! a group, with the group's sentence ("dave and 2 others reacted…") and the group as the
//! push `Topic`, so the device replaces the older one; the job sends only while the
//! recipient has no socket open on any instance. Chat messages are quoted unless the
//! recipient turned `push_previews` off ("New message from dave").

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::user::NotificationKind;
use crate::domain::{Id, Timestamp};
use crate::error::{AppError, AppResult};
use crate::events::{EventBatch, EventName, Topic};
use crate::jobs::{self, Job};
use crate::mail::Mail;
use crate::pagination::{Page, PageQuery};
use crate::services::access;
use crate::services::auth::SendEmail;
use crate::services::users::UserSummary;
use crate::state::AppState;
use crate::store::chat as chat_store;
use crate::store::comments as comment_store;
use crate::store::graph::{self as graph_store, FollowStatus};
use crate::store::notifications::{self as store, NewNotification, NotificationRow};
use crate::store::posts as post_store;
use crate::store::reactions::{self as reaction_store, Target as ReactionTarget};
use crate::store::reports as report_store;
use crate::store::users::{self as user_store, UserRow};
use crate::store::{Ex, Tx};

mod job;
mod reads;

pub use job::run_notify;
use job::sentence;
pub use reads::{list, mark_all_read, mark_read, unread_count};

/// Latest actors listed with a notification.
pub const SHOWN_ACTORS: usize = 3;
/// Longest preview kept with a notification, in characters.
const PREVIEW_CHARS: usize = 140;

/// What a notification points at, for a client to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetType {
    /// A post (reaction to it, mention in it).
    Post,
    /// A comment (a new comment or reply, a reaction to it, a mention in it).
    Comment,
    /// An account (follows and requests: the follower; approvals: the approver).
    User,
    /// A conversation (chat messages).
    Conversation,
    /// A report (moderators: a new one; the reporter: it was resolved).
    Report,
    /// A data export (ready to download).
    Export,
}

impl TargetType {
    fn key(self) -> &'static str {
        match self {
            Self::Post => "post",
            Self::Comment => "comment",
            Self::User => "user",
            Self::Conversation => "conversation",
            Self::Report => "report",
            Self::Export => "export",
        }
    }

    fn from_key(k: &str) -> Option<Self> {
        [Self::Post, Self::Comment, Self::User, Self::Conversation, Self::Report, Self::Export]
            .into_iter()
            .find(|t| t.key() == k)
    }
}

/// `target` of a notification.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct NotificationTarget {
    /// `post`, `comment`, `user` or `conversation`.
    #[serde(rename = "type")]
    pub kind: TargetType,
    /// Its id.
    pub id: Id,
}

/// A notification as clients see it (REST lists and `notification.created`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct NotificationView {
    /// Id.
    pub id: Id,
    /// `follow`, `follow_request`, `follow_approved`, `reaction`, `comment`, `reply`,
    /// `mention` or `message`.
    pub kind: NotificationKind,
    /// Read.
    pub read: bool,
    /// Created.
    pub created_at: Timestamp,
    /// Last change (a new actor joined the group).
    pub updated_at: Timestamp,
    /// The latest actors, latest first, at most 3.
    pub actors: Vec<UserSummary>,
    /// All actors grouped in this notification.
    pub actor_count: i64,
    /// What it is about.
    pub target: NotificationTarget,
    /// The post concerned (reactions, comments, replies, mentions), else `null`.
    pub post_id: Option<Id>,
    /// The comment concerned (a new comment or reply, a reaction to or mention in a
    /// comment), else `null`.
    pub comment_id: Option<Id>,
    /// The conversation (messages), else `null`.
    pub conversation_id: Option<Id>,
    /// Excerpt of the comment, the post caption (a mention in a post) or the latest message
    /// (refreshed quietly, without an event, as more messages arrive), else `null`.
    pub preview: Option<String>,
    /// A ready-made sentence: "alice and 2 others reacted to your post".
    pub text: String,
}

/// `GET /notifications/unread-count` answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UnreadCount {
    /// Unread notifications.
    pub count: i64,
}

/// `notifications.read` data: which notifications another device marked read.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum NotificationsRead {
    /// These.
    Ids {
        /// Ids marked read.
        ids: Vec<Id>,
    },
    /// All of them.
    All {
        /// Always `true`.
        all: bool,
    },
}

/// `GET /notifications` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// Only unread notifications.
    #[serde(default)]
    pub unread_only: Option<bool>,
    /// Opaque cursor.
    pub cursor: Option<String>,
    /// Page size, 1–100.
    pub limit: Option<u32>,
}

// ---- delivery channels ------------------------------------------------------------------

/// A way a notification reaches its recipient. Each has a per-kind preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Stored, listed by `GET /notifications`, pushed live as `notification.created`.
    InApp,
    /// An e-mail through the `SendEmail` job.
    Email,
    /// A push to each registered device through the `SendPush` job.
    Push,
}

impl Channel {
    /// Every channel, in delivery order (in-app first: it creates the row the others
    /// describe).
    pub const ALL: [Channel; 3] = [Channel::InApp, Channel::Email, Channel::Push];

    /// Whether the recipient wants this channel for the kind.
    fn enabled(self, pref: &user_store::NotificationPref) -> bool {
        match self {
            Channel::InApp => pref.in_app,
            Channel::Email => pref.email,
            Channel::Push => pref.push,
        }
    }
}

// ---- the job ----------------------------------------------------------------------------

/// What happened, as recorded by the service that caused it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum Cause {
    /// `follower` now follows `followee`.
    Followed {
        /// Who followed.
        follower: Id,
        /// Who was followed.
        followee: Id,
    },
    /// `follower` asked to follow the private account `followee`.
    FollowRequested {
        /// Who asked.
        follower: Id,
        /// Who was asked.
        followee: Id,
    },
    /// `followee` approved `follower`'s request.
    FollowApproved {
        /// Whose request.
        follower: Id,
        /// Who approved.
        followee: Id,
    },
    /// `actor` reacted (for the first time) to a post or comment.
    Reacted {
        /// Who reacted.
        actor: Id,
        /// `true` for a comment, `false` for a post.
        comment: bool,
        /// The post or comment.
        id: Id,
    },
    /// A comment was created (comment, reply and mentions).
    Commented {
        /// The comment.
        comment: Id,
    },
    /// `users` were newly mentioned in a post (or one of its comments) by an edit or a new
    /// post.
    Mentioned {
        /// The post.
        post: Id,
        /// The comment, when the mention is in a comment.
        comment: Option<Id>,
        /// Who was mentioned.
        users: Vec<Id>,
    },
    /// A chat message (see [`message_sent`]).
    Messaged {
        /// The conversation.
        conversation_id: Id,
        /// The message.
        message_id: Id,
        /// Who sent it.
        sender: Id,
        /// The other members.
        recipients: Vec<Id>,
        /// Its text, shortened.
        preview: String,
    },
    /// A report was filed: every moderator hears of it.
    Reported {
        /// The report.
        report: Id,
    },
    /// A report was resolved: its reporter hears of it (not by whom).
    ReportResolved {
        /// The report.
        report: Id,
    },
    /// A data export is ready: its owner hears of it.
    ExportReady {
        /// The export.
        export: Id,
        /// Its owner.
        user: Id,
    },
}

/// Job: create the notifications of one [`Cause`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Notify(pub Cause);

impl Job for Notify {
    const KIND: &'static str = "notify";
}

/// Enqueues the notification work of `cause` in the caller's transaction.
pub async fn enqueue(state: &AppState, tx: &mut Tx, cause: Cause) -> AppResult<()> {
    jobs::enqueue(tx, &state.ids, state.config.jobs.max_attempts, &Notify(cause)).await?;
    Ok(())
}

/// For chat: call inside the transaction that stores a message. Enqueues a durable job that
/// gives each of `recipients` (the other members; the sender is skipped if present) a
/// `message` notification — grouped per conversation while unread — unless they have an
/// open socket on any instance (they see the message live), blocked or were blocked by the
/// sender, or muted the sender. `preview` is the message text (shortened here). Never
/// fails the caller's request for notification reasons: it only writes the job row.
pub async fn message_sent(
    state: &AppState,
    tx: &mut Tx,
    conversation_id: Id,
    message_id: Id,
    sender: Id,
    recipients: &[Id],
    preview: &str,
) -> AppResult<()> {
    let recipients: Vec<Id> = recipients.iter().copied().filter(|r| *r != sender).collect();
    if recipients.is_empty() {
        return Ok(());
    }
    let cause = Cause::Messaged { conversation_id, message_id, sender, recipients, preview: shorten(preview) };
    enqueue(state, tx, cause).await
}

fn shorten(text: &str) -> String {
    let t = text.trim();
    if t.chars().count() <= PREVIEW_CHARS {
        t.to_string()
    } else {
        let mut s: String = t.chars().take(PREVIEW_CHARS - 1).collect();
        s.push('…');
        s
    }
}

/// Views of `rows` (in order), with their latest actors, in two queries.
async fn views(mut ex: Ex<'_>, rows: Vec<NotificationRow>) -> anyhow::Result<Vec<NotificationView>> {
    let ids: Vec<Id> = rows.iter().map(|r| r.id).collect();
    let actors = store::latest_actors(ex.reborrow(), &ids, SHOWN_ACTORS as i64).await?;
    let mut user_ids: Vec<Id> = actors.iter().map(|a| a.1).collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    let users: HashMap<Id, UserSummary> =
        user_store::get_many(ex, &user_ids).await?.iter().map(|u| (u.id, UserSummary::from(u))).collect();
    let mut by_n: HashMap<Id, Vec<UserSummary>> = HashMap::new();
    for (n, a) in actors {
        if let Some(u) = users.get(&a) {
            by_n.entry(n).or_default().push(u.clone());
        }
    }
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let kind = NotificationKind::from_key(&r.kind)?;
            let target = TargetType::from_key(&r.target_type)?;
            let actors = by_n.remove(&r.id).unwrap_or_default();
            let first = actors.first().map(|a| a.username.clone()).unwrap_or_else(|| "someone".into());
            Some(NotificationView {
                id: r.id,
                kind,
                read: r.is_read,
                created_at: r.created_at,
                updated_at: r.updated_at,
                text: sentence(kind, target, &first, r.actor_count),
                actors,
                actor_count: r.actor_count,
                target: NotificationTarget { kind: target, id: r.target_id },
                post_id: r.post_id,
                comment_id: r.comment_id,
                conversation_id: r.conversation_id,
                preview: r.preview,
            })
        })
        .collect())
}

// ---- source removal (called inside the transaction of the change) -------------------------

/// A follow (or request) `follower → followee` ended: its notifications go.
pub async fn follow_removed(tx: &mut Tx, follower: Id, followee: Id) -> AppResult<()> {
    for kind in [NotificationKind::Follow, NotificationKind::FollowRequest] {
        store::remove_actor(tx.ex(), followee, kind.key(), "user", follower, follower).await?;
    }
    store::remove_actor(tx.ex(), follower, NotificationKind::FollowApproved.key(), "user", followee, followee).await?;
    Ok(())
}

/// A reaction of `actor` on a post or comment was removed: they leave the group.
pub async fn reaction_removed(tx: &mut Tx, owner: Id, comment: bool, id: Id, actor: Id) -> AppResult<()> {
    let ttype = if comment { "comment" } else { "post" };
    store::remove_actor(tx.ex(), owner, NotificationKind::Reaction.key(), ttype, id, actor).await?;
    Ok(())
}

/// A comment became a tombstone: notifications about it go (deleted rows cascade).
pub async fn comment_removed(tx: &mut Tx, comment: Id) -> AppResult<()> {
    store::delete_for_comment(tx.ex(), comment).await?;
    Ok(())
}

/// `a` and `b` blocked: each leaves the other's notifications.
pub async fn blocked(tx: &mut Tx, a: Id, b: Id) -> AppResult<()> {
    store::remove_actor_everywhere(tx.ex(), a, b).await?;
    store::remove_actor_everywhere(tx.ex(), b, a).await?;
    Ok(())
}

/// A message was deleted for everyone: unread `message` notifications stop quoting it.
pub async fn message_deleted(tx: &mut Tx, conversation: Id, body: &str) -> AppResult<()> {
    store::clear_message_preview(tx.ex(), conversation, &shorten(body)).await?;
    Ok(())
}

/// A follow request was approved or declined: its `follow_request` notification goes (an
/// approval notifies the requester instead; a request job that runs later finds the
/// request no longer pending and creates nothing).
pub async fn request_answered(tx: &mut Tx, follower: Id, followee: Id) -> AppResult<()> {
    store::delete_for_target(tx.ex(), followee, NotificationKind::FollowRequest.key(), "user", follower).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_group_actors() {
        assert_eq!(sentence(NotificationKind::Reaction, TargetType::Post, "alice", 1), "alice reacted to your post");
        assert_eq!(
            sentence(NotificationKind::Reaction, TargetType::Comment, "alice", 2),
            "alice and 1 other reacted to your comment"
        );
        assert_eq!(
            sentence(NotificationKind::Reaction, TargetType::Post, "alice", 4),
            "alice and 3 others reacted to your post"
        );
    }

    #[test]
    fn previews_are_bounded() {
        let long = "x".repeat(500);
        assert_eq!(shorten(&long).chars().count(), PREVIEW_CHARS);
        assert_eq!(shorten("  hi "), "hi");
    }

    #[test]
    fn causes_round_trip_as_job_payloads() {
        let c = Cause::Messaged {
            conversation_id: Id(1),
            message_id: Id(2),
            sender: Id(3),
            recipients: vec![Id(4)],
            preview: "hi".into(),
        };
        let s = serde_json::to_string(&Notify(c)).unwrap();
        let back: Notify = serde_json::from_str(&s).unwrap();
        assert!(matches!(back.0, Cause::Messaged { sender: Id(3), .. }));
    }
}
