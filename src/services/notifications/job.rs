//! The `Notify` job: who hears of a cause, through which channels, grouped how.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::*;
use crate::push::{Message as PushMessage, Urgency};
use crate::services::push;
use crate::store::comments::CommentRow;
use crate::store::posts::{PostRow, RowLock};

/// One notification to deliver, before the recipient's checks.
struct Planned {
    recipient: Id,
    kind: NotificationKind,
    target: (TargetType, Id),
    post_id: Option<Id>,
    comment_id: Option<Id>,
    conversation_id: Option<Id>,
    preview: Option<String>,
    /// The author of the post concerned: the recipient must still be allowed to see it.
    post_author: Option<Id>,
    /// A notice of the service's own (reports): delivered whatever stands between the
    /// recipient and the actor.
    notice: bool,
    /// The chat message (messages).
    message_id: Option<Id>,
}

impl Planned {
    fn about(recipient: Id, kind: NotificationKind, target: (TargetType, Id)) -> Self {
        Planned {
            recipient,
            kind,
            target,
            post_id: None,
            comment_id: None,
            conversation_id: None,
            preview: None,
            post_author: None,
            notice: false,
            message_id: None,
        }
    }
}

/// Runs a [`Notify`] job (see the module doc).
pub async fn run_notify(state: AppState, job: Notify) -> anyhow::Result<()> {
    // Presence lives in Redis (or memory): asked before the write transaction, which on
    // SQLite is the one writer and must not wait on the network.
    let online: HashSet<Id> = match &job.0 {
        Cause::Messaged { recipients, .. } => state.presence.online_among(recipients).await?.into_iter().collect(),
        _ => HashSet::new(),
    };
    let mut tx = state.store.begin().await?;
    let (actor, planned) = plan(&mut tx, &job.0).await?;
    let mut events = EventBatch::new();
    for p in planned.into_iter().filter(|p| !online.contains(&p.recipient)) {
        deliver(&state, &mut tx, &mut events, actor, p).await?;
    }
    jobs::complete_within(&mut tx).await?;
    state.commit(tx, events).await?;
    Ok(())
}

/// Comment `id` (not deleted) and its post, both locked `FOR KEY SHARE` until the job
/// commits, in the order removals lock them: the post, then the comment. Read plainly, a
/// removal in between made the notification's insert fail its foreign key and the job retry
/// (seen under `loadgen mix`). A comment's or a post's removal takes its row lock before it
/// deletes anything, so it waits for the job, or the job waits for it and then finds nothing
/// (`None`); taken the other way round (comment, then post) the job and a post's removal,
/// which deletes the post's comments, could each wait for the other.
async fn post_and_comment(tx: &mut Tx, id: Id) -> anyhow::Result<Option<(PostRow, CommentRow)>> {
    let Some(c) = comment_store::get(tx.ex(), id).await? else { return Ok(None) };
    let Some(post) = post_store::lock(tx.ex(), c.post_id, RowLock::KeyShare).await? else { return Ok(None) };
    let c = comment_store::lock(tx.ex(), id, RowLock::KeyShare).await?.filter(|c| !c.deleted);
    Ok(c.map(|c| (post, c)))
}

/// Re-reads the source of `cause` and lists who should hear of it. Nothing when the source
/// is gone.
///
/// The post and the comment the notifications will point at are read `FOR KEY SHARE` (see
/// [`post_and_comment`]): neither can be deleted before this job commits.
async fn plan(tx: &mut Tx, cause: &Cause) -> anyhow::Result<(Id, Vec<Planned>)> {
    use NotificationKind as K;
    Ok(match cause {
        Cause::Followed { follower, followee } => {
            let ok = graph_store::follow_status(tx.ex(), *follower, *followee).await? == Some(FollowStatus::Active);
            let p = ok.then(|| Planned::about(*followee, K::Follow, (TargetType::User, *follower)));
            (*follower, p.into_iter().collect())
        }
        Cause::FollowRequested { follower, followee } => {
            let ok = graph_store::follow_status(tx.ex(), *follower, *followee).await? == Some(FollowStatus::Pending);
            let p = ok.then(|| Planned::about(*followee, K::FollowRequest, (TargetType::User, *follower)));
            (*follower, p.into_iter().collect())
        }
        Cause::FollowApproved { follower, followee } => {
            let ok = graph_store::follow_status(tx.ex(), *follower, *followee).await? == Some(FollowStatus::Active);
            let p = ok.then(|| Planned::about(*follower, K::FollowApproved, (TargetType::User, *followee)));
            (*followee, p.into_iter().collect())
        }
        Cause::Reacted { actor, comment, id } => {
            let target = if *comment { ReactionTarget::Comment } else { ReactionTarget::Post };
            if reaction_store::mine_of(tx.ex(), target, &[*id], *actor).await?.is_empty() {
                return Ok((*actor, Vec::new()));
            }
            let p = if *comment {
                post_and_comment(tx, *id).await?.map(|(post, c)| {
                    let mut p = Planned::about(c.author_id, K::Reaction, (TargetType::Comment, c.id));
                    p.post_id = Some(c.post_id);
                    p.comment_id = Some(c.id);
                    // The comment's author must still be allowed to see the post.
                    p.post_author = Some(post.author_id);
                    p
                })
            } else {
                post_store::lock(tx.ex(), *id, RowLock::KeyShare).await?.map(|post| {
                    let mut p = Planned::about(post.author_id, K::Reaction, (TargetType::Post, post.id));
                    p.post_id = Some(post.id);
                    p
                })
            };
            (*actor, p.into_iter().collect())
        }
        Cause::Commented { comment } => {
            let Some((post, c)) = post_and_comment(tx, *comment).await? else {
                return Ok((Id(0), Vec::new()));
            };
            let mut out: Vec<Planned> = Vec::new();
            let mut add = |recipient: Id, kind: NotificationKind| {
                if recipient != c.author_id && !out.iter().any(|p| p.recipient == recipient) {
                    let mut p = Planned::about(recipient, kind, (TargetType::Comment, c.id));
                    p.post_id = Some(post.id);
                    p.comment_id = Some(c.id);
                    p.preview = Some(shorten(&c.body));
                    p.post_author = Some(post.author_id);
                    out.push(p);
                }
            };
            if let Some(parent) = c.parent_id
                && let Some(parent) = comment_store::get(tx.ex(), parent).await?.filter(|p| !p.deleted)
            {
                add(parent.author_id, K::Reply);
            }
            add(post.author_id, K::Comment);
            for (_, user) in comment_store::mentions_of(tx.ex(), &[c.id]).await? {
                add(user, K::Mention);
            }
            (c.author_id, out)
        }
        Cause::Mentioned { post, comment, users } => {
            let Some(post) = post_store::lock(tx.ex(), *post, RowLock::KeyShare).await? else {
                return Ok((Id(0), Vec::new()));
            };
            let (actor, target, current, preview) = match comment {
                Some(cid) => {
                    let Some(c) = comment_store::lock(tx.ex(), *cid, RowLock::KeyShare).await?.filter(|c| !c.deleted)
                    else {
                        return Ok((Id(0), Vec::new()));
                    };
                    let current = comment_store::mentions_of(tx.ex(), &[c.id]).await?;
                    (c.author_id, (TargetType::Comment, c.id), current, shorten(&c.body))
                }
                None => {
                    let current = post_store::mentions_of(tx.ex(), &[post.id]).await?;
                    (post.author_id, (TargetType::Post, post.id), current, shorten(&post.caption))
                }
            };
            let out = users
                .iter()
                .filter(|u| current.iter().any(|(_, m)| m == *u))
                .map(|u| {
                    let mut p = Planned::about(*u, K::Mention, target);
                    p.post_id = Some(post.id);
                    p.comment_id = comment.as_ref().copied();
                    p.preview = Some(preview.clone());
                    p.post_author = Some(post.author_id);
                    p
                })
                .collect();
            (actor, out)
        }
        Cause::Messaged { conversation_id, message_id, sender, recipients, preview } => {
            // A message deleted for everyone before this ran notifies no one.
            if chat_store::get_message(tx.ex(), *message_id, None).await?.is_none_or(|m| m.deleted) {
                return Ok((*sender, Vec::new()));
            }
            let muted: HashSet<Id> = chat_store::members_of(tx.ex(), &[*conversation_id])
                .await?
                .into_iter()
                .filter(|m| m.muted)
                .map(|m| m.user_id)
                .collect();
            let out = recipients
                .iter()
                .filter(|r| !muted.contains(r))
                .map(|r| {
                    let mut p = Planned::about(*r, K::Message, (TargetType::Conversation, *conversation_id));
                    p.conversation_id = Some(*conversation_id);
                    p.message_id = Some(*message_id);
                    p.preview = Some(preview.clone());
                    p
                })
                .collect();
            (*sender, out)
        }
        Cause::Reported { report } => {
            let Some(r) = report_store::get(tx.ex(), *report).await?.filter(|r| r.status == "open") else {
                return Ok((Id(0), Vec::new()));
            };
            let out = user_store::moderator_ids(tx.ex())
                .await?
                .into_iter()
                .filter(|m| *m != r.reporter_id && *m != r.target_user_id)
                .map(|m| {
                    let mut p = Planned::about(m, K::Report, (TargetType::Report, r.id));
                    p.preview = Some(format!("{} {}: {}", r.target_type, r.target_id, r.reason));
                    p.notice = true;
                    p
                })
                .collect();
            (r.reporter_id, out)
        }
        Cause::ExportReady { export, user } => {
            let mut p = Planned::about(*user, K::ExportReady, (TargetType::Export, *export));
            p.notice = true;
            (*user, vec![p])
        }
        Cause::ReportResolved { report } => {
            let Some(r) = report_store::get(tx.ex(), *report).await?.filter(|r| r.status == "resolved") else {
                return Ok((Id(0), Vec::new()));
            };
            // The reporter is named as the actor: who resolved it is not the reporter's to know.
            let mut p = Planned::about(r.reporter_id, K::ReportResolved, (TargetType::Report, r.id));
            p.preview = r.resolution.clone();
            p.notice = true;
            (r.reporter_id, vec![p])
        }
    })
}

/// Delivers one planned notification through every channel the recipient enabled.
async fn deliver(state: &AppState, tx: &mut Tx, events: &mut EventBatch, actor: Id, p: Planned) -> anyhow::Result<()> {
    if !p.notice && !access::may_notify(tx.ex(), p.recipient, actor, p.post_author).await? {
        return Ok(());
    }
    let (ttype, tid) = (p.target.0.key(), p.target.1);
    let kind = p.kind.key();
    let now = Timestamp::now();
    let key = store::group_key(kind, ttype, tid);
    let group = store::find_group(tx.ex(), p.recipient, &key).await?;
    if p.kind == NotificationKind::Message {
        // Further messages from a sender already in the unread group refresh it quietly.
        if let Some(g) = &group
            && store::has_actor(tx.ex(), p.recipient, kind, ttype, tid, actor).await?
        {
            store::touch(tx.ex(), g.id, actor, p.preview.as_deref(), now).await?;
            return Ok(());
        }
    } else if store::has_actor(tx.ex(), p.recipient, kind, ttype, tid, actor).await? {
        return Ok(()); // a repeat (or a retry): counted already
    }
    let pref = user_store::notification_prefs(tx.ex(), p.recipient)
        .await?
        .into_iter()
        .find(|x| x.kind == p.kind)
        .expect("every kind has a preference");
    // `fresh`: a new notification (or one the recipient will never see in the app); only
    // those are worth an e-mail. An actor joining a group is not.
    let mut fresh = true;
    let mut view: Option<NotificationView> = None;
    // The recipient and the actor, read once for the channels that need them (e-mail, push).
    let mut both: Option<Option<(UserRow, UserRow)>> = None;
    for channel in Channel::ALL {
        if !channel.enabled(&pref) {
            continue;
        }
        match channel {
            Channel::InApp => {
                let id = match &group {
                    Some(g) => {
                        fresh = false;
                        g.id
                    }
                    None => {
                        let id = state.ids.next();
                        let n = NewNotification {
                            id,
                            user_id: p.recipient,
                            kind,
                            target_type: ttype,
                            target_id: tid,
                            post_id: p.post_id,
                            comment_id: p.comment_id,
                            conversation_id: p.conversation_id,
                            preview: p.preview.as_deref(),
                            now,
                        };
                        if store::insert(tx.ex(), &n).await? {
                            id
                        } else {
                            // Two jobs of one group racing (PostgreSQL, two workers) both
                            // found no group; the unique index let one insert: join it.
                            fresh = false;
                            store::find_group(tx.ex(), p.recipient, &key)
                                .await?
                                .ok_or_else(|| anyhow::anyhow!("notification group vanished"))?
                                .id
                        }
                    }
                };
                if store::add_actor(tx.ex(), id, actor, p.preview.as_deref(), now).await? {
                    let row = store::get(tx.ex(), id).await?.ok_or_else(|| anyhow::anyhow!("notification vanished"))?;
                    let v = views(tx.ex(), vec![row]).await?.pop().ok_or_else(|| anyhow::anyhow!("no view"))?;
                    events.add(tx, &[Topic::Notification(p.recipient)], EventName::NotificationCreated, &v).await?;
                    view = Some(v);
                }
            }
            Channel::Email => {
                if !fresh {
                    continue;
                }
                if both.is_none() {
                    both = Some(people(tx, p.recipient, actor).await?);
                }
                let Some(Some((to, by))) = &both else { continue };
                let text = match &view {
                    Some(v) => v.text.clone(),
                    None => sentence(p.kind, p.target.0, &by.username, 1),
                };
                let mail = email(state, to, &text, p.preview.as_deref());
                jobs::enqueue(tx, &state.ids, state.config.jobs.max_attempts, &SendEmail(mail)).await?;
            }
            Channel::Push => {
                // A new notification, or a new actor in its group (which the push replaces
                // on the device); with in-app off, each event on its own.
                let pushable = view.is_some() || (fresh && !pref.in_app);
                if !pushable {
                    continue;
                }
                if both.is_none() {
                    both = Some(people(tx, p.recipient, actor).await?);
                }
                let Some(Some((to, by))) = &both else { continue };
                let message = push_message(state, &p, &key, view.as_ref(), to, by);
                let recheck = push::Recheck {
                    actor: (!p.notice).then_some(actor),
                    post_author: p.post_author,
                    actors: view.as_ref().map_or(0, |v| v.actor_count),
                    chat: p.conversation_id.zip(p.message_id),
                };
                push::enqueue(state, tx, p.recipient, p.kind, &message, &recheck).await?;
            }
        }
    }
    Ok(())
}

/// The recipient and the actor, if both still exist.
async fn people(tx: &mut Tx, recipient: Id, actor: Id) -> anyhow::Result<Option<(UserRow, UserRow)>> {
    let users = user_store::get_many(tx.ex(), &[recipient, actor]).await?;
    let find = |id: Id| users.iter().find(|u| u.id == id).cloned();
    Ok(find(recipient).zip(find(actor)))
}

/// What a device shows for `p`: the group's sentence, the preview (a chat message only
/// where the recipient allows previews), where a click leads, and the group as `Topic`.
fn push_message(
    state: &AppState,
    p: &Planned,
    group_key: &str,
    view: Option<&NotificationView>,
    to: &UserRow,
    by: &UserRow,
) -> PushMessage {
    use NotificationKind as K;
    let count = view.map_or(1, |v| v.actor_count);
    let first = view.and_then(|v| v.actors.first()).map_or(by.username.as_str(), |a| a.username.as_str());
    let (title, body) = if p.kind == K::Message && !to.push_previews {
        (format!("New message from {}", who(first, count)), String::new())
    } else {
        (sentence(p.kind, p.target.0, first, count), p.preview.clone().unwrap_or_default())
    };
    let url = match (p.kind, p.target.0) {
        (_, TargetType::Post | TargetType::Comment) => {
            p.post_id.map_or("/notifications".into(), |id| format!("/p/{id}"))
        }
        (K::FollowRequest, _) => "/requests".into(),
        (_, TargetType::User) => format!("/u/{}", by.username),
        (_, TargetType::Conversation) => format!("/chat/{}", p.target.1),
        (K::Report, _) => "/admin".into(),
        (_, TargetType::Export) => "/settings".into(),
        _ => "/notifications".into(),
    };
    let urgency = match p.kind {
        K::Message => Urgency::High,
        K::Reaction => Urgency::Low,
        _ => Urgency::Normal,
    };
    // The recipient is implied by the device; the group names the rest. A hash keeps it
    // within the 32 URL-safe characters RFC 8030 allows.
    let digest = Sha256::digest(group_key.as_bytes());
    PushMessage {
        kind: p.kind.key().to_string(),
        title,
        body,
        url,
        topic: URL_SAFE_NO_PAD.encode(&digest[..16]),
        notification_id: view.map(|v| v.id),
        urgency,
        ttl_secs: state.config.push.ttl_secs,
    }
}

fn email(state: &AppState, to: &UserRow, text: &str, preview: Option<&str>) -> Mail {
    let quoted = preview.map(|p| format!("\n    \"{p}\"\n")).unwrap_or_default();
    Mail {
        to: to.email.clone(),
        subject: text.to_string(),
        text: format!(
            "Hello {},\n\n{text}.\n{quoted}\nOpen Chorus: {}\n\n\
             You receive this e-mail because e-mail notifications of this kind are on in your settings.\n",
            to.username,
            state.config.public_url()
        ),
    }
}

/// "alice", "alice and 1 other", "alice and 2 others".
fn who(first: &str, count: i64) -> String {
    match count {
        ..=1 => first.to_string(),
        2 => format!("{first} and 1 other"),
        n => format!("{first} and {} others", n - 1),
    }
}

/// The sentence of a notification: "alice and 2 others reacted to your post".
pub(super) fn sentence(kind: NotificationKind, target: TargetType, first: &str, count: i64) -> String {
    let who = who(first, count);
    let what = match target {
        TargetType::Comment => "comment",
        _ => "post",
    };
    match kind {
        NotificationKind::Follow => format!("{who} started following you"),
        NotificationKind::FollowRequest => format!("{who} asked to follow you"),
        NotificationKind::FollowApproved => format!("{who} approved your follow request"),
        NotificationKind::Reaction => format!("{who} reacted to your {what}"),
        NotificationKind::Comment => format!("{who} commented on your post"),
        NotificationKind::Reply => format!("{who} replied to your comment"),
        NotificationKind::Mention => format!("{who} mentioned you in a {what}"),
        NotificationKind::Message => format!("{who} sent you a message"),
        NotificationKind::Report => format!("{who} filed a report"),
        NotificationKind::ReportResolved => "A moderator reviewed your report. Thank you".to_string(),
        NotificationKind::ExportReady => "Your data export is ready to download".to_string(),
    }
}
