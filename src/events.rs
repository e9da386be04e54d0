//! Domain events: every change a client can watch, defined once.
//!
//! A service that changes something collects the resulting events in an [`EventBatch`]
//! *inside* its transaction, commits, and only then hands the batch to the broker
//! ([`crate::state::AppState::publish`]). Events on durable topics (`feed`, `follower`,
//! `notification`, `chat:*`) get a contiguous per-topic `seq` and are stored in the same
//! transaction, so a client that was away can resume from the database with no gap; events
//! on the other topics are ephemeral and only delivered live.
//!
//! The names here are the wire names of `protocol/PROTOCOL.md`; the hub knows topics and
//! bytes, never what a post is.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::domain::{Id, Timestamp};
use crate::store::{StoreResult, Tx, events as ev_store};

/// A realtime topic, typed. Parsed at the edge, authorised in one place
/// (`services::access`), and turned into a storage/broker key with [`Topic::key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A user's home feed: new posts of accounts they follow. Durable.
    Feed(Id),
    /// A profile's public activity.
    User(Id),
    /// A post's comments, reactions, edits and deletion.
    Post(Id),
    /// A user's new followers, requests and approvals. Durable.
    Follower(Id),
    /// A user's notifications. Durable.
    Notification(Id),
    /// A conversation's messages, edits, typing and receipts. Durable.
    Chat(Id),
    /// A user's upload processing.
    Image(Id),
    /// A user's online state.
    Presence(Id),
    /// Internal: commands to a user's sessions on every instance (close on logout…).
    /// Never subscribable by clients.
    Control(Id),
    /// Internal: the sessions holding a subscription whose visibility depends on this
    /// account's privacy (its `user:` topic, its posts' `post:` topics). The account going
    /// private publishes `access.changed` here, and those sessions re-check, on every
    /// instance. Never subscribable by clients.
    Audience(Id),
}

impl Topic {
    /// The key used in storage and on the broker, e.g. `feed:42`, `chat:9`.
    pub fn key(&self) -> String {
        let (k, id) = self.parts();
        format!("{k}:{id}")
    }

    fn parts(&self) -> (&'static str, Id) {
        match *self {
            Topic::Feed(i) => ("feed", i),
            Topic::User(i) => ("user", i),
            Topic::Post(i) => ("post", i),
            Topic::Follower(i) => ("follower", i),
            Topic::Notification(i) => ("notification", i),
            Topic::Chat(i) => ("chat", i),
            Topic::Image(i) => ("image", i),
            Topic::Presence(i) => ("presence", i),
            Topic::Control(i) => ("ctl", i),
            Topic::Audience(i) => ("aud", i),
        }
    }

    /// Parses a key made by [`Topic::key`].
    pub fn from_key(key: &str) -> Option<Topic> {
        let (k, id) = key.split_once(':')?;
        let id: Id = id.parse().ok()?;
        Some(match k {
            "feed" => Topic::Feed(id),
            "user" => Topic::User(id),
            "post" => Topic::Post(id),
            "follower" => Topic::Follower(id),
            "notification" => Topic::Notification(id),
            "chat" => Topic::Chat(id),
            "image" => Topic::Image(id),
            "presence" => Topic::Presence(id),
            "ctl" => Topic::Control(id),
            "aud" => Topic::Audience(id),
            _ => return None,
        })
    }

    /// Parses a client's topic name (`feed`, `post:42`, …) for the user `me`. The personal
    /// topics have no id on the wire: they always mean "mine".
    pub fn from_wire(name: &str, me: Id) -> Option<Topic> {
        match name {
            "feed" => Some(Topic::Feed(me)),
            "follower" => Some(Topic::Follower(me)),
            "notification" => Some(Topic::Notification(me)),
            "image" => Some(Topic::Image(me)),
            _ => {
                let (k, id) = name.split_once(':')?;
                let id: Id = id.parse().ok()?;
                match k {
                    "user" => Some(Topic::User(id)),
                    "post" => Some(Topic::Post(id)),
                    "chat" => Some(Topic::Chat(id)),
                    "presence" => Some(Topic::Presence(id)),
                    _ => None,
                }
            }
        }
    }

    /// The name clients see (`feed` rather than `feed:42`).
    pub fn wire_name(&self) -> Cow<'static, str> {
        match self {
            Topic::Feed(_) => "feed".into(),
            Topic::Follower(_) => "follower".into(),
            Topic::Notification(_) => "notification".into(),
            Topic::Image(_) => "image".into(),
            other => other.key().into(),
        }
    }

    /// Whether events on this topic are stored with a `seq` and can be resumed.
    pub fn is_durable(&self) -> bool {
        matches!(self, Topic::Feed(_) | Topic::Follower(_) | Topic::Notification(_) | Topic::Chat(_))
    }

    /// The Socket.IO namespace that carries this topic.
    pub fn namespace(&self) -> &'static str {
        match self {
            Topic::Feed(_) | Topic::User(_) | Topic::Post(_) => "/post",
            Topic::Follower(_) => "/follower",
            Topic::Notification(_) => "/notification",
            Topic::Chat(_) | Topic::Presence(_) => "/chat",
            Topic::Image(_) => "/image",
            Topic::Control(_) | Topic::Audience(_) => "",
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (k, id) = self.parts();
        write!(f, "{k}:{id}")
    }
}

/// Every event name on the wire. Adding one means adding it to `protocol/` too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum EventName {
    /// A post appeared (feed, user).
    #[serde(rename = "post.created")]
    PostCreated,
    /// A post's caption changed (feed, user, post).
    #[serde(rename = "post.updated")]
    PostUpdated,
    /// A post was deleted (feed, user, post).
    #[serde(rename = "post.deleted")]
    PostDeleted,
    /// A comment appeared (post).
    #[serde(rename = "comment.created")]
    CommentCreated,
    /// A comment was edited (post).
    #[serde(rename = "comment.updated")]
    CommentUpdated,
    /// A comment was deleted or tombstoned (post).
    #[serde(rename = "comment.deleted")]
    CommentDeleted,
    /// Reaction counts of a post or comment changed (post).
    #[serde(rename = "reaction.changed")]
    ReactionChanged,
    /// Someone followed me (follower).
    #[serde(rename = "follower.added")]
    FollowerAdded,
    /// Someone unfollowed me (follower).
    #[serde(rename = "follower.removed")]
    FollowerRemoved,
    /// Someone asked to follow me (follower).
    #[serde(rename = "follow.requested")]
    FollowRequested,
    /// My follow request was approved (follower).
    #[serde(rename = "follow.approved")]
    FollowApproved,
    /// A notification for me (notification).
    #[serde(rename = "notification.created")]
    NotificationCreated,
    /// Notifications were marked read on another device (notification).
    #[serde(rename = "notifications.read")]
    NotificationsRead,
    /// A chat message (chat).
    #[serde(rename = "message.created")]
    MessageCreated,
    /// A chat message was edited (chat).
    #[serde(rename = "message.updated")]
    MessageUpdated,
    /// A chat message was deleted for everyone (chat).
    #[serde(rename = "message.deleted")]
    MessageDeleted,
    /// Reactions on a chat message changed (chat).
    #[serde(rename = "message.reaction")]
    MessageReaction,
    /// Someone is typing (chat, ephemeral).
    #[serde(rename = "typing")]
    Typing,
    /// A member read up to a message (chat).
    #[serde(rename = "read")]
    Read,
    /// A member joined a conversation (chat).
    #[serde(rename = "member.added")]
    MemberAdded,
    /// A member left or was removed (chat).
    #[serde(rename = "member.removed")]
    MemberRemoved,
    /// An upload is being processed (image).
    #[serde(rename = "media.processing")]
    MediaProcessing,
    /// An upload is ready, with its URLs (image).
    #[serde(rename = "media.ready")]
    MediaReady,
    /// An upload could not be processed (image).
    #[serde(rename = "media.failed")]
    MediaFailed,
    /// A user went online or offline (presence, ephemeral).
    #[serde(rename = "presence.changed")]
    PresenceChanged,
    /// (Moderators, on `notification`) the number of open reports changed (ephemeral).
    #[serde(rename = "reports.open")]
    ReportsOpen,
    /// Internal: close this user's sessions (all, or one session id). Never sent to clients.
    #[serde(rename = "session.revoked")]
    SessionRevoked,
    /// Internal: what this user may see changed (a block, a lost follow): their sessions
    /// re-check their subscriptions. Never sent to clients.
    #[serde(rename = "access.changed")]
    AccessChanged,
}

impl EventName {
    /// Every event name.
    pub const ALL: [EventName; 28] = [
        Self::PostCreated,
        Self::PostUpdated,
        Self::PostDeleted,
        Self::CommentCreated,
        Self::CommentUpdated,
        Self::CommentDeleted,
        Self::ReactionChanged,
        Self::FollowerAdded,
        Self::FollowerRemoved,
        Self::FollowRequested,
        Self::FollowApproved,
        Self::NotificationCreated,
        Self::NotificationsRead,
        Self::MessageCreated,
        Self::MessageUpdated,
        Self::MessageDeleted,
        Self::MessageReaction,
        Self::Typing,
        Self::Read,
        Self::MemberAdded,
        Self::MemberRemoved,
        Self::MediaProcessing,
        Self::MediaReady,
        Self::MediaFailed,
        Self::PresenceChanged,
        Self::ReportsOpen,
        Self::SessionRevoked,
        Self::AccessChanged,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PostCreated => "post.created",
            Self::PostUpdated => "post.updated",
            Self::PostDeleted => "post.deleted",
            Self::CommentCreated => "comment.created",
            Self::CommentUpdated => "comment.updated",
            Self::CommentDeleted => "comment.deleted",
            Self::ReactionChanged => "reaction.changed",
            Self::FollowerAdded => "follower.added",
            Self::FollowerRemoved => "follower.removed",
            Self::FollowRequested => "follow.requested",
            Self::FollowApproved => "follow.approved",
            Self::NotificationCreated => "notification.created",
            Self::NotificationsRead => "notifications.read",
            Self::MessageCreated => "message.created",
            Self::MessageUpdated => "message.updated",
            Self::MessageDeleted => "message.deleted",
            Self::MessageReaction => "message.reaction",
            Self::Typing => "typing",
            Self::Read => "read",
            Self::MemberAdded => "member.added",
            Self::MemberRemoved => "member.removed",
            Self::MediaProcessing => "media.processing",
            Self::MediaReady => "media.ready",
            Self::MediaFailed => "media.failed",
            Self::PresenceChanged => "presence.changed",
            Self::ReportsOpen => "reports.open",
            Self::SessionRevoked => "session.revoked",
            Self::AccessChanged => "access.changed",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// One event on its way to subscribers: what the broker carries between instances.
/// `data` is serialised JSON, shared (not copied) between the envelopes of one batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// Topic key (`feed:42`).
    pub topic: Arc<str>,
    /// Event name.
    pub event: EventName,
    /// Position in a durable topic; `None` for ephemeral topics.
    pub seq: Option<i64>,
    /// JSON payload.
    pub data: Arc<str>,
    /// The account whose action this event reports (a comment's writer, a message's
    /// sender), when it is someone's: the hub does not deliver it to a session whose user
    /// is blocked either way with that account, and replays skip it likewise. Not part of
    /// the payload; carried beside it on the broker and stored beside it.
    pub actor: Option<Id>,
}

/// Events collected during a transaction, published after it commits.
#[derive(Debug, Default)]
#[must_use = "an event batch does nothing until published after commit"]
pub struct EventBatch {
    items: Vec<Envelope>,
    actor: Option<Id>,
}

impl EventBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    fn envelope(&self, topic: Arc<str>, event: EventName, seq: Option<i64>, data: Arc<str>) -> Envelope {
        Envelope { topic, event, seq, data, actor: self.actor }
    }

    /// An empty batch whose events report `actor`'s doing (see [`Envelope::actor`]).
    pub fn by(actor: Id) -> Self {
        Self { items: Vec::new(), actor: Some(actor) }
    }

    /// Adds `event` for each of `topics`. Data is serialised once for all of them.
    /// Durable topics get their `seq` and are stored through `tx` now; the others are only
    /// kept for publishing.
    pub async fn add(
        &mut self,
        tx: &mut Tx,
        topics: &[Topic],
        event: EventName,
        data: &impl Serialize,
    ) -> StoreResult<()> {
        let data: Arc<str> = serde_json::to_string(data).expect("event data serialises").into();
        let durable: Vec<(Arc<str>, &Topic)> =
            topics.iter().filter(|t| t.is_durable()).map(|t| (Arc::from(t.key()), t)).collect();
        if !durable.is_empty() {
            let keys: Vec<&str> = durable.iter().map(|(k, _)| &**k).collect();
            let seqs = ev_store::append(tx.ex(), &keys, event.as_str(), &data, self.actor, Timestamp::now()).await?;
            for ((key, _), seq) in durable.iter().zip(seqs) {
                self.items.push(self.envelope(key.clone(), event, Some(seq), data.clone()));
            }
        }
        for t in topics.iter().filter(|t| !t.is_durable()) {
            self.items.push(self.envelope(t.key().into(), event, None, data.clone()));
        }
        Ok(())
    }

    /// Adds an event on ephemeral topics only (no transaction needed).
    /// Panics in debug builds if a durable topic is given: those need [`EventBatch::add`].
    pub fn ephemeral(&mut self, topics: &[Topic], event: EventName, data: &impl Serialize) {
        debug_assert!(topics.iter().all(|t| !t.is_durable()), "durable topics need EventBatch::add");
        let data: Arc<str> = serde_json::to_string(data).expect("event data serialises").into();
        for t in topics.iter().filter(|t| !t.is_durable()) {
            self.items.push(self.envelope(t.key().into(), event, None, data.clone()));
        }
    }

    /// Adds a transient event (`typing`) on any topic, durable ones included: it carries no
    /// `seq`, is not stored and is never replayed; sessions pass it through live only.
    pub fn transient(&mut self, topic: Topic, event: EventName, data: &impl Serialize) {
        let data: Arc<str> = serde_json::to_string(data).expect("event data serialises").into();
        self.items.push(self.envelope(topic.key().into(), event, None, data));
    }

    /// The `seq` the last event added on durable `topic` got.
    pub fn last_seq(&self, topic: &Topic) -> Option<i64> {
        let key = topic.key();
        self.items.iter().rev().find(|e| *e.topic == *key).and_then(|e| e.seq)
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The envelopes, in the order added.
    pub fn into_envelopes(self) -> Vec<Envelope> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_keys_and_wire_names_round_trip() {
        let me = Id(7);
        for (wire, key) in [
            ("feed", "feed:7"),
            ("follower", "follower:7"),
            ("notification", "notification:7"),
            ("image", "image:7"),
            ("post:42", "post:42"),
            ("user:9", "user:9"),
            ("chat:3", "chat:3"),
            ("presence:5", "presence:5"),
        ] {
            let t = Topic::from_wire(wire, me).unwrap();
            assert_eq!(t.key(), key);
            assert_eq!(Topic::from_key(key), Some(t));
            assert_eq!(t.wire_name(), wire);
        }
        assert_eq!(Topic::from_wire("ctl:7", me), None, "control topics are not for clients");
        assert_eq!(Topic::from_wire("feed:8", me), None, "someone else's feed is not nameable");
        assert_eq!(Topic::from_wire("post:abc", me), None);
    }

    #[test]
    fn event_names_match_serde() {
        for e in EventName::ALL {
            assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
            assert_eq!(EventName::parse(e.as_str()), Some(e));
        }
    }
}
