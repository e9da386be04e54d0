//! Feeds: the home feed (hybrid fan-out), explore (engagement with time decay) and hashtag
//! feeds, plus the durable jobs that keep timelines in step.
//!
//! # Home feed: fan-out on write, with fan-out on read for big accounts
//! A new post enqueues a [`FanOutPost`] job in the post's transaction (never fanned out in
//! the request). The job writes the post id into the timeline of each active follower —
//! the `timeline_entries` table, or a Redis sorted set `{ns}:tl:{user}` when `REDIS_URL` is
//! set, trimmed to `feed.timeline_max_len` — and publishes `post.created` on each of their
//! durable `feed` topics (one batched sequence allocation and insert), except to followers
//! who muted the author. A Redis timeline that was never built on the running Redis (a new
//! user, or a Redis that restarted empty) is rebuilt from the database on its first read.
//!
//! Authors with more than `feed.fanout_read_threshold` followers are **not** fanned out:
//! their posts are published on `user:{author}` only (and the author's own `feed`), and
//! merged into their followers' feeds at read time. Each skipped post widens the author's
//! `unfanned_since..unfanned_until` range, and reads keep merging an author while that range
//! is set. When an unfollow brings the account back to the threshold, a
//! [`BackfillFollowers`] job copies those posts into the followers' timelines and clears the
//! range, so no post is lost between the two paths and an account that was never big costs
//! nothing. The caller's own posts are merged at read time too.
//!
//! Reading a page merges, in id order, the timeline and the posts of the read-time authors
//! (self + big accounts followed), then keeps the posts whose authors the caller currently
//! follows (active), has not muted and is not blocked with — exactly the accounts whose
//! content [`access`] would show even if private. So unfollow, block and mute take effect at
//! once, deleted posts vanish (their rows are gone), edits show (rows are read fresh), and
//! the jobs that clean timelines ([`SyncTimeline`] on unfollow/block, deletion clean-up in
//! Redis) or backfill them (on follow and approval) only tidy up. Pages are cut by post id
//! (cursor = last id): new posts have larger ids, so paging while posts arrive has no gap
//! and no duplicate.
//!
//! # Explore
//! Recent public posts (last 7 days, newest 500) from accounts the caller neither follows
//! nor requested, blocked or muted, ranked by `(reactions + 2·comments + 1) /
//! (age_hours + 2)^1.5`. The cursor freezes the window (the time ages are measured at and
//! the newest id), so pages are cut from one ranking; it carries the last `(score, id)`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::domain::{Id, Timestamp, now_ms};
use crate::error::{AppError, AppResult};
use crate::events::{EventBatch, EventName, Topic};
use crate::jobs;
pub use crate::jobs::payloads::{BackfillFollowers, FanOutPost, PostChange, SyncTimeline};
use crate::pagination::{Page, PageQuery, decode_cursor, encode_cursor};
use crate::services::access;
use crate::services::posts::{self as post_svc, PostDeleted, PostView};
use crate::state::AppState;
use crate::store::posts::{self as post_store, PostRow};
use crate::store::timelines::{self as tl_store, RedisTimelines};
use crate::store::{Ex, Tx, graph, users as user_store};

/// Rounds of candidates a home-feed page reads before answering with a short page.
const MAX_FEED_ROUNDS: usize = 6;
/// Newest posts a follow backfills into the follower's timeline.
const BACKFILL: i64 = 100;
/// How far back explore looks.
const EXPLORE_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;
/// How many recent posts explore ranks.
const EXPLORE_CANDIDATES: i64 = 500;

/// Where timelines live on this instance.
enum Timelines {
    Table,
    Redis(RedisTimelines),
}

fn timelines(state: &AppState) -> Timelines {
    match &state.redis {
        Some(conn) => Timelines::Redis(RedisTimelines::new(conn.clone(), &state.config.redis_namespace)),
        None => Timelines::Table,
    }
}

fn redis_down(e: redis::RedisError) -> AppError {
    tracing::warn!(error = %e, "Redis timeline unavailable");
    AppError::Unavailable
}

/// Whether delivering `post` to `user` also trims `user`'s table timeline: for about one in
/// 16 (post, user) pairs, so each fan-out trims a sixteenth of its recipients and each
/// timeline is cut back to `timeline_max_len` every ~16 deliveries — an even cost instead of
/// a spike (trimming is a bounded index walk per user). Redis trims on every push.
fn trims(post: Id, user: Id) -> bool {
    ((post.0 ^ user.0.rotate_left(17)) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60 == 0
}

/// Runs a [`FanOutPost`] job. Its timeline rows, its events and its completion commit in
/// one transaction, so a crash re-runs it only if nothing of it happened (Redis timeline
/// pushes before it are idempotent).
pub async fn run_fan_out(state: AppState, job: FanOutPost) -> anyhow::Result<()> {
    let mut c = state.store.conn().await?;
    let Some(author) = user_store::get(c.ex(), job.author).await? else { return Ok(()) };
    let pulled = too_big(&state, author.follower_count);
    let followers = if pulled { Vec::new() } else { graph::active_follower_ids(c.ex(), job.author).await? };
    let live = access::live_feed_recipients(c.ex(), job.author, &followers).await?;
    let post = post_store::get(c.ex(), job.post).await?;
    drop(c);
    let mut topics = vec![Topic::Feed(job.author)];
    topics.extend(live.iter().map(|f| Topic::Feed(*f)));
    metrics::histogram!("chorus_feed_fanout_recipients").record(followers.len() as f64);
    let tl = timelines(&state);
    let max_len = state.config.feed.timeline_max_len;
    // The author is the actor: replays of `feed` skip authors the reader no longer follows.
    let mut events = EventBatch::by(job.author);
    match job.change {
        PostChange::Created | PostChange::Updated => {
            let Some(post) = post else { return Ok(()) }; // deleted meanwhile
            let Some(view) = post_svc::views(&state, None, vec![post]).await?.pop() else { return Ok(()) };
            if job.change == PostChange::Created
                && let Timelines::Redis(r) = &tl
            {
                r.push(&[job.post], &followers, max_len).await?;
            }
            let mut tx = state.store.begin().await?;
            let name = if job.change == PostChange::Created {
                if pulled {
                    user_store::mark_unfanned(tx.ex(), job.author, job.post).await?;
                } else if matches!(tl, Timelines::Table) {
                    tl_store::push(tx.ex(), job.post, job.author, &followers).await?;
                    let due: Vec<Id> = followers.iter().copied().filter(|u| trims(job.post, *u)).collect();
                    tl_store::trim(tx.ex(), &due, max_len).await?;
                }
                EventName::PostCreated
            } else {
                EventName::PostUpdated
            };
            events.add(&mut tx, &topics, name, &view).await?;
            crate::jobs::complete_within(&mut tx).await?;
            state.commit(tx, events).await?;
        }
        PostChange::Deleted => {
            // Table entries went with the post row (cascade); Redis ones are removed here
            // (and skipped at read time until then).
            if let Timelines::Redis(r) = &tl {
                r.remove_everywhere(job.post, &followers).await?;
            }
            let mut tx = state.store.begin().await?;
            events.add(&mut tx, &topics, EventName::PostDeleted, &PostDeleted { id: job.post }).await?;
            crate::jobs::complete_within(&mut tx).await?;
            state.commit(tx, events).await?;
        }
    }
    Ok(())
}

/// Runs a [`SyncTimeline`] job. It re-reads the follow first, so a job that lost a race
/// with a newer follow/unfollow does nothing.
pub async fn run_sync_timeline(state: AppState, job: SyncTimeline) -> anyhow::Result<()> {
    let mut c = state.store.conn().await?;
    let active = graph::follow_status(c.ex(), job.user, job.author).await? == Some(graph::FollowStatus::Active);
    if active != job.follow {
        return Ok(());
    }
    let tl = timelines(&state);
    if job.follow {
        drop(c);
        return backfill(&state, &tl, job.author, &[job.user], None).await;
    }
    match tl {
        Timelines::Table => {
            drop(c);
            let mut tx = state.store.begin().await?;
            tl_store::remove_author(tx.ex(), job.user, job.author).await?;
            tx.commit().await?;
        }
        Timelines::Redis(r) => {
            if let Some(oldest) = r.oldest(job.user).await? {
                let max_len = state.config.feed.timeline_max_len;
                let ids = post_store::ids_of_author_since(c.ex(), job.author, oldest, max_len.max(1000)).await?;
                r.remove(job.user, &ids).await?;
            }
        }
    }
    Ok(())
}

/// Whether an author has too many followers to fan out to (`feed.fanout_read_threshold`).
fn too_big(state: &AppState, followers: i64) -> bool {
    followers > state.config.feed.fanout_read_threshold
}

/// Whether reads merge an author's posts: too big to fan out to, or with posts that fan-out
/// skipped and [`BackfillFollowers`] has not copied yet.
fn merged(state: &AppState, followers: i64, unfanned: bool) -> bool {
    too_big(state, followers) || unfanned
}

/// Called in the transaction that ended one of `author`'s active follows (after the
/// counters moved). When the account is now small enough to fan out to but fan-out skipped
/// some of its posts while it was big, a [`BackfillFollowers`] job copies them into its
/// followers' timelines; reads merge them until then. An account that was never above the
/// threshold (or whose posts were all copied since) costs one row read here and nothing else.
pub async fn follower_removed(state: &AppState, tx: &mut Tx, author: Id) -> AppResult<()> {
    let Some((followers, unfanned)) = user_store::fan_out_state(tx.ex(), author).await? else { return Ok(()) };
    if unfanned.is_some() && !too_big(state, followers) {
        jobs::enqueue(tx, &state.ids, state.config.jobs.max_attempts, &BackfillFollowers { author }).await?;
    }
    Ok(())
}

/// Runs a [`BackfillFollowers`] job: copies the posts fan-out skipped into every follower's
/// timeline, 500 followers per transaction (a crash re-runs it; entries already there are
/// kept), then clears the author's range — or, if fan-out skipped newer posts meanwhile,
/// moves it past what was copied and, the account still being small, queues the next round.
/// Nothing when the account grew back above the threshold (reads merge it; the next drop
/// below queues this again). A follower who leaves while it runs may keep entries: reads
/// skip authors one does not follow, and trimming ages them out.
pub async fn run_backfill_followers(state: AppState, job: BackfillFollowers) -> anyhow::Result<()> {
    let mut c = state.store.conn().await?;
    let Some((followers, Some((since, until)))) = user_store::fan_out_state(c.ex(), job.author).await? else {
        return Ok(());
    };
    if too_big(&state, followers) {
        return Ok(());
    }
    let users = graph::active_follower_ids(c.ex(), job.author).await?;
    drop(c);
    backfill(&state, &timelines(&state), job.author, &users, Some(since)).await?;
    let mut tx = state.store.begin().await?;
    if let Some(followers) = user_store::finish_unfanned(tx.ex(), job.author, until).await?
        && !too_big(&state, followers)
    {
        jobs::enqueue(&mut tx, &state.ids, state.config.jobs.max_attempts, &job).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Copies `author`'s newest posts into the timelines of `users`: those from `from` on (up
/// to `timeline_max_len`), or the [`BACKFILL`] newest.
async fn backfill(state: &AppState, tl: &Timelines, author: Id, users: &[Id], from: Option<Id>) -> anyhow::Result<()> {
    const USERS_PER_ROUND: usize = 500;
    let max_len = state.config.feed.timeline_max_len;
    let newest = if from.is_some() { max_len } else { BACKFILL.min(max_len) };
    match tl {
        Timelines::Table => {
            for chunk in users.chunks(USERS_PER_ROUND) {
                let mut tx = state.store.begin().await?;
                tl_store::backfill(tx.ex(), chunk, author, from, newest).await?;
                tl_store::trim(tx.ex(), chunk, max_len).await?;
                tx.commit().await?;
            }
        }
        Timelines::Redis(r) => {
            let mut c = state.store.conn().await?;
            let ids = match from {
                Some(from) => post_store::ids_of_author_since(c.ex(), author, from, newest).await?,
                None => post_store::ids_by_authors(c.ex(), &[author], None, newest).await?,
            };
            drop(c);
            for chunk in users.chunks(USERS_PER_ROUND) {
                r.push(&ids, chunk, max_len).await?;
            }
        }
    }
    Ok(())
}

/// The caller's home feed: their own posts and those of the accounts they follow, newest
/// first.
pub async fn home(state: &AppState, me: Id, q: &PageQuery) -> AppResult<Page<PostView>> {
    let page = q.parse::<Id>()?;
    let limit = page.limit as usize;
    let want = limit + 1;
    let audience = access::full_audience(state, me).await?;
    let mut c = state.store.conn().await?;
    let following = graph::following_for_feed(c.ex(), me).await?;
    let mut pulled: Vec<Id> = vec![me];
    pulled.extend(following.iter().filter(|f| merged(state, f.1, f.2)).map(|f| f.0));
    drop(c);
    let keep = |author: Id| audience.standing(author).in_home_feed();

    let tl = timelines(state);
    let batch = (want * 2).max(20) as i64;
    let mut before = page.after;
    let mut out: Vec<PostRow> = Vec::new();
    let mut exhausted = false;
    for _ in 0..MAX_FEED_ROUNDS {
        let mut c = state.store.conn().await?;
        let from_timeline = match &tl {
            Timelines::Table => tl_store::page(c.ex(), me, before, batch).await?,
            Timelines::Redis(r) => redis_page(state, r, c.ex(), me, &following, before, batch).await?,
        };
        let from_authors = post_store::ids_by_authors(c.ex(), &pulled, before, batch).await?;
        // Below the lowest id of a source that filled its batch, that source may have more:
        // only ids at or above the highest such bound are complete in this round.
        let horizon = [&from_timeline, &from_authors]
            .iter()
            .filter(|s| s.len() as i64 == batch)
            .filter_map(|s| s.last())
            .max()
            .copied();
        let mut ids: Vec<Id> =
            from_timeline.into_iter().chain(from_authors).filter(|id| horizon.is_none_or(|h| *id >= h)).collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.dedup();
        let mut rows: HashMap<Id, PostRow> =
            post_store::get_many(c.ex(), &ids).await?.into_iter().map(|p| (p.id, p)).collect();
        drop(c);
        out.extend(ids.iter().filter_map(|id| rows.remove(id)).filter(|p| keep(p.author_id)));
        if out.len() >= want {
            break;
        }
        match horizon {
            Some(h) => before = Some(h),
            None => {
                exhausted = true;
                break;
            }
        }
    }
    let next = if out.len() >= want {
        out.truncate(limit);
        out.last().map(|p| p.id)
    } else if exhausted {
        None
    } else {
        before // read budget spent: a short page, continuing below what was read
    };
    Ok(Page { items: post_svc::views(state, Some(me), out).await?, next_cursor: next.map(|id| encode_cursor(&id)) })
}

/// A page of `me`'s Redis timeline. A timeline never built on this Redis (a new user, or a
/// Redis that restarted empty) is first rebuilt from the database as fan-out would have left
/// it: the newest posts of the followed accounts whose posts are not merged at read time.
async fn redis_page(
    state: &AppState,
    r: &RedisTimelines,
    ex: Ex<'_>,
    me: Id,
    following: &[(Id, i64, bool)],
    before: Option<Id>,
    batch: i64,
) -> AppResult<Vec<Id>> {
    if let Some(ids) = r.page(me, before, batch).await.map_err(redis_down)? {
        return Ok(ids);
    }
    let max_len = state.config.feed.timeline_max_len;
    let authors: Vec<Id> = following.iter().filter(|f| !merged(state, f.1, f.2)).map(|f| f.0).collect();
    let posts = post_store::ids_by_authors(ex, &authors, None, max_len).await?;
    r.rebuild(me, &posts, max_len).await.map_err(redis_down)?;
    // The page from what was just written (newest first), without reading it back.
    Ok(posts.into_iter().filter(|id| before.is_none_or(|b| *id < b)).take(batch as usize).collect())
}

/// Explore's frozen window and position.
#[derive(Debug, Serialize, Deserialize)]
struct ExploreCursor {
    /// Time ages are measured at (Unix ms).
    t: i64,
    /// Newest post id of the window.
    m: Id,
    /// Score of the last item returned, as `f64::to_bits`: exact (a JSON float may not
    /// parse back to the same double, and a cursor one ULP off would repeat a page).
    s: u64,
    /// Id of the last item returned.
    i: Id,
}

/// Engagement with time decay.
fn score(p: &PostRow, at_ms: i64) -> f64 {
    let age_hours = ((at_ms - p.created_at.0).max(0) as f64) / 3_600_000.0;
    (p.reaction_count as f64 + 2.0 * p.comment_count as f64 + 1.0) / (age_hours + 2.0).powf(1.5)
}

/// Recent public posts from accounts the caller does not follow, best first.
pub async fn explore(state: &AppState, viewer: Option<Id>, q: &PageQuery) -> AppResult<Page<PostView>> {
    let limit = q.parse::<serde_json::Value>()?.limit as usize;
    let cursor: Option<ExploreCursor> = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c)?),
    };
    let mut c = state.store.conn().await?;
    let (at, max_id) = match &cursor {
        Some(k) => (k.t, k.m),
        None => match post_store::max_id(c.ex()).await? {
            Some(m) => (now_ms(), m),
            None => return Ok(Page { items: Vec::new(), next_cursor: None }),
        },
    };
    let rows = post_store::recent_by_public_authors(
        c.ex(),
        viewer,
        Timestamp(at - EXPLORE_WINDOW_MS),
        max_id,
        EXPLORE_CANDIDATES,
    )
    .await?;
    drop(c);
    let authors: Vec<Id> = rows.iter().map(|p| p.author_id).collect();
    let audience = access::audience_for(state, viewer, &authors).await?;
    let mut ranked: Vec<(f64, PostRow)> = rows
        .into_iter()
        .filter(|p| audience.standing(p.author_id).may_discover())
        .map(|p| (score(&p, at), p))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.id.cmp(&a.1.id)));
    let mut rest: Vec<(f64, PostRow)> = match &cursor {
        Some(k) => {
            let last = f64::from_bits(k.s);
            ranked.into_iter().filter(|(s, p)| *s < last || (*s == last && p.id < k.i)).collect()
        }
        None => ranked,
    };
    let more = rest.len() > limit;
    rest.truncate(limit);
    let next = if more {
        rest.last().map(|(s, p)| encode_cursor(&ExploreCursor { t: at, m: max_id, s: s.to_bits(), i: p.id }))
    } else {
        None
    };
    let rows = rest.into_iter().map(|(_, p)| p).collect();
    Ok(Page { items: post_svc::views(state, viewer, rows).await?, next_cursor: next })
}

/// Normalises a hashtag from a path: optional `#`, case-folded, word characters only.
fn normalise_tag(raw: &str) -> AppResult<String> {
    let tag = raw.trim().trim_start_matches('#').to_lowercase();
    if tag.is_empty() || tag.chars().count() > 100 || !tag.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(AppError::field("tag", "must be letters, digits or _ (at most 100)"));
    }
    Ok(tag)
}

/// Posts tagged `#tag` that the viewer may see, newest first.
pub async fn hashtag(state: &AppState, viewer: Option<Id>, tag: &str, q: &PageQuery) -> AppResult<Page<PostView>> {
    let tag = normalise_tag(tag)?;
    let page = q.parse::<Id>()?;
    let store_ = state.store.clone();
    let scan = post_svc::scan_visible(state, viewer, page.limit, page.after, |after, n| {
        let (store_, tag) = (store_.clone(), tag.clone());
        async move {
            let mut c = store_.conn().await?;
            Ok(post_store::by_hashtag(c.ex(), &tag, after, n).await?.into_iter().map(|p| (p.id, p)).collect())
        }
    })
    .await?;
    post_svc::page_of(state, viewer, scan).await
}

/// Entries in `user`'s stored timeline (table or Redis), for tests and diagnostics.
pub async fn timeline_len(state: &AppState, user: Id) -> AppResult<i64> {
    match timelines(state) {
        Timelines::Table => {
            let mut c = state.store.conn().await?;
            Ok(tl_store::len(c.ex(), user).await?)
        }
        Timelines::Redis(r) => r.len(user).await.map_err(redis_down),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explore_cursor_keeps_the_exact_score() {
        for x in [0.1f64 + 0.2, 1.0 / 3.0, 7.0 / 2.0f64.powf(1.5), 1e-300, 4.0 / 3.0e7, f64::MIN_POSITIVE] {
            let c = ExploreCursor { t: 1, m: Id(2), s: x.to_bits(), i: Id(3) };
            let back: ExploreCursor = decode_cursor(&encode_cursor(&c)).unwrap();
            assert_eq!(f64::from_bits(back.s).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn engagement_counts_and_age_decays() {
        let row = |reaction_count, comment_count| PostRow {
            id: Id(1),
            author_id: Id(1),
            caption: String::new(),
            has_image: false,
            has_video: false,
            comment_count,
            reaction_count,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        let hours = |h: i64| h * 3_600_000;
        assert!(score(&row(0, 0), hours(0)) > score(&row(0, 0), hours(10)), "older ranks lower");
        assert!(score(&row(0, 2), 0) > score(&row(3, 0), 0), "a comment weighs two reactions");
        assert!(score(&row(50, 0), hours(48)) < score(&row(5, 0), hours(1)), "decay beats stale popularity");
    }
}
