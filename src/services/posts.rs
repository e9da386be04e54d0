//! Posts: create (caption and/or media), edit the caption, delete, save; the post
//! representation and how a page of them is built; hashtag and mention parsing; the
//! visibility-filtered scans behind `GET /posts` and `GET /users/me/saved`.
//!
//! # Building a page of posts
//! [`views`] turns any number of rows into [`PostView`]s with a fixed number of queries
//! (hashtags, mentions, users, reaction counts, the viewer's reactions, saves, media), never
//! one per post.
//!
//! # Events
//! Create, edit and delete publish `post.created|updated|deleted` on `user:{author}` (and
//! `post:{id}` for edits and deletions) right after commit, and enqueue a durable
//! [`FanOutPost`] job in the same transaction that carries the change to followers' `feed`
//! topics and timelines (see `services::feed`). Event data is the viewer-independent view
//! (`my_reaction: null`, `saved: false`); deletions carry `{id}`. New mentions (in a new
//! post or an edit) enqueue a durable `Notify` job; deleting a post deletes its
//! notifications (foreign key cascade).

use std::collections::{HashMap, HashSet};
use std::future::Future;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::user::bounded_text;
use crate::domain::{Id, Timestamp};
use crate::error::{AppError, AppResult, Validator};
use crate::events::{EventBatch, EventName, Topic};
use crate::jobs;
use crate::jobs::payloads::{FanOutPost, PostChange};
use crate::pagination::{Page, PageQuery, encode_cursor};
use crate::ratelimit::Write;
use crate::services::access;
use crate::services::media::{self, MediaView};
use crate::services::notifications::{self, Cause};
use crate::services::reactions::{self, Counts};
use crate::services::users::UserSummary;
use crate::state::AppState;
use crate::store::posts::{self as store, HasMedia, NewPost, PostRow, RowLock};
use crate::store::reactions::Target;
use crate::store::{saves, users as user_store};

/// Longest caption, in characters.
pub const MAX_CAPTION: usize = 2200;
/// Most media items on one post.
pub const MAX_MEDIA: usize = 10;
const MAX_HASHTAGS: usize = 30;
const MAX_MENTIONS: usize = 20;
/// Rounds of candidates a filtered list reads before answering with a short page.
const MAX_SCAN_ROUNDS: usize = 5;

/// A post as clients see it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PostView {
    /// Id.
    pub id: Id,
    /// Author.
    pub author: UserSummary,
    /// Caption (may be empty when there is media).
    pub caption: String,
    /// Hashtags in the caption, lower-case, without `#`.
    pub hashtags: Vec<String>,
    /// Existing users mentioned in the caption.
    pub mentions: Vec<UserSummary>,
    /// Attached media, in order, with the URLs of each variant.
    pub media: Vec<MediaView>,
    /// Reaction counts by type, zero counts omitted.
    pub reaction_counts: Counts,
    /// The viewer's reaction type, if any.
    pub my_reaction: Option<String>,
    /// Live comments (replies included).
    pub comment_count: i64,
    /// Whether the viewer saved it.
    pub saved: bool,
    /// Created.
    pub created_at: Timestamp,
    /// Last caption change.
    pub updated_at: Timestamp,
}

impl PostView {
    /// The same post as nobody in particular sees it: what events carry.
    pub fn neutral(&self) -> PostView {
        PostView { my_reaction: None, saved: false, ..self.clone() }
    }
}

/// `post.deleted` data.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PostDeleted {
    /// The deleted post.
    pub id: Id,
}

/// `POST /posts` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePost {
    /// Up to 2,200 characters; `#hashtags` and `@mentions` are recognised. Required unless
    /// there is media.
    #[serde(default)]
    pub caption: Option<String>,
    /// 1–10 of the caller's ready, unattached uploads (`POST /media`), in display order.
    #[serde(default)]
    pub media_ids: Vec<Id>,
}

/// `PATCH /posts/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePost {
    /// The new caption (may be empty only when the post has media).
    pub caption: String,
}

/// `GET /posts` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PostListQuery {
    /// `image` or `video`: only posts with such media.
    pub has: Option<String>,
    /// Opaque cursor.
    pub cursor: Option<String>,
    /// Page size, 1–100.
    pub limit: Option<u32>,
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `#hashtags` of a text: a `#` not preceded by a word character, then unicode letters,
/// digits or `_`; lower-cased, deduplicated, in order of appearance, at most 30, each at
/// most 100 characters.
pub fn parse_hashtags(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '#' && (i == 0 || !is_word(chars[i - 1])) {
            let start = i + 1;
            let mut j = start;
            while j < chars.len() && is_word(chars[j]) {
                j += 1;
            }
            if j > start && j - start <= 100 {
                let tag = chars[start..j].iter().collect::<String>().to_lowercase();
                if !out.contains(&tag) && out.len() < MAX_HASHTAGS {
                    out.push(tag);
                }
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// `@mentions` of a text: an `@` not preceded by a word character (so e-mail addresses do
/// not count), then a username (`[a-z0-9_.]`, 3–30, case-folded; a trailing `.` ends the
/// sentence, not the name). Deduplicated, at most 20.
pub fn parse_mentions(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '@' && (i == 0 || !(is_word(chars[i - 1]) || chars[i - 1] == '@')) {
            let start = i + 1;
            let mut j = start;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_' || chars[j] == '.') {
                j += 1;
            }
            let name = chars[start..j].iter().collect::<String>().trim_end_matches('.').to_ascii_lowercase();
            if (3..=30).contains(&name.len()) && !out.contains(&name) && out.len() < MAX_MENTIONS {
                out.push(name);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// Existing users mentioned in `text` that `author` may interact with (no block either way).
pub async fn resolve_mentions(state: &AppState, author: Id, text: &str) -> AppResult<Vec<Id>> {
    let names = parse_mentions(text);
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut c = state.store.conn().await?;
    let users = user_store::get_by_usernames(c.ex(), &names).await?;
    drop(c);
    let ids: Vec<Id> = users.iter().map(|u| u.id).collect();
    let audience = access::audience_for(state, Some(author), &ids).await?;
    Ok(ids.into_iter().filter(|u| audience.may_see_profile(*u)).collect())
}

/// Builds the views of `rows` (in order) for `viewer`, with a fixed number of queries.
pub async fn views(state: &AppState, viewer: Option<Id>, rows: Vec<PostRow>) -> AppResult<Vec<PostView>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Id> = rows.iter().map(|p| p.id).collect();
    let mut c = state.store.conn().await?;
    let mut tags: HashMap<Id, Vec<String>> = HashMap::new();
    for (post, tag) in store::hashtags_of(c.ex(), &ids).await? {
        tags.entry(post).or_default().push(tag);
    }
    let mentions = store::mentions_of(c.ex(), &ids).await?;
    let mut user_ids: Vec<Id> = rows.iter().map(|p| p.author_id).chain(mentions.iter().map(|m| m.1)).collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    let user_rows = user_store::get_many(c.ex(), &user_ids).await?;
    let private: HashSet<Id> = user_rows.iter().filter(|u| u.is_private).map(|u| u.id).collect();
    let by_private: HashSet<Id> = rows.iter().filter(|p| private.contains(&p.author_id)).map(|p| p.id).collect();
    let users: HashMap<Id, UserSummary> = user_rows.iter().map(|u| (u.id, UserSummary::from(u))).collect();
    // A mention of an account blocked either way with the viewer is not shown to them.
    let mention_ids: Vec<Id> = mentions.iter().map(|m| m.1).collect();
    let audience = access::audience_on(c.ex(), viewer, &mention_ids).await?;
    let mut mentioned: HashMap<Id, Vec<UserSummary>> = HashMap::new();
    for (post, user) in mentions {
        if let Some(u) = users.get(&user).filter(|_| audience.may_see_profile(user)) {
            mentioned.entry(post).or_default().push(u.clone());
        }
    }
    let (mut counts, mut mine) = reactions::counts_and_mine(&mut c, Target::Post, &ids, viewer).await?;
    let saved: HashSet<Id> = match viewer {
        Some(v) => saves::saved_among(c.ex(), v, &ids).await?.into_iter().collect(),
        None => HashSet::new(),
    };
    drop(c);
    let mut media = media::for_posts(state, &ids, &by_private).await?;
    Ok(rows
        .into_iter()
        .filter_map(|p| {
            let author = users.get(&p.author_id)?.clone();
            Some(PostView {
                id: p.id,
                author,
                caption: p.caption,
                hashtags: tags.remove(&p.id).unwrap_or_default(),
                mentions: mentioned.remove(&p.id).unwrap_or_default(),
                media: media.remove(&p.id).unwrap_or_default(),
                reaction_counts: counts.remove(&p.id).unwrap_or_default(),
                my_reaction: mine.remove(&p.id),
                comment_count: p.comment_count,
                saved: saved.contains(&p.id),
                created_at: p.created_at,
                updated_at: p.updated_at,
            })
        })
        .collect())
}

/// Reads candidates in key order (`fetch(after, n)` returns up to `n` rows after a key),
/// keeps those the viewer may see, until a page of `limit` is full. Returns the page and the
/// key to continue after. When many candidates in a row are invisible it answers after
/// [`MAX_SCAN_ROUNDS`] reads with a short page and a cursor past what it read: a short page,
/// never a gap.
pub async fn scan_visible<K, F, Fut>(
    state: &AppState,
    viewer: Option<Id>,
    limit: u32,
    start: Option<K>,
    mut fetch: F,
) -> AppResult<(Vec<PostRow>, Option<K>)>
where
    K: Clone,
    F: FnMut(Option<K>, i64) -> Fut,
    Fut: Future<Output = AppResult<Vec<(K, PostRow)>>>,
{
    let want = limit as usize + 1;
    let batch = (want * 2).max(20) as i64;
    let mut after = start;
    let mut out: Vec<(K, PostRow)> = Vec::new();
    for _ in 0..MAX_SCAN_ROUNDS {
        let rows = fetch(after.clone(), batch).await?;
        let full = rows.len() as i64 == batch;
        let last = rows.last().map(|r| r.0.clone());
        out.extend(access::filter_visible(state, viewer, rows, |r| r.1.author_id).await?);
        if out.len() >= want {
            out.truncate(limit as usize);
            let next = out.last().map(|r| r.0.clone());
            return Ok((out.into_iter().map(|r| r.1).collect(), next));
        }
        if !full {
            return Ok((out.into_iter().map(|r| r.1).collect(), None));
        }
        after = last;
    }
    Ok((out.into_iter().map(|r| r.1).collect(), after))
}

/// A page of views from a scan result.
pub async fn page_of<K: Serialize>(
    state: &AppState,
    viewer: Option<Id>,
    (rows, next): (Vec<PostRow>, Option<K>),
) -> AppResult<Page<PostView>> {
    Ok(Page { items: views(state, viewer, rows).await?, next_cursor: next.map(|k| encode_cursor(&k)) })
}

fn validate_caption(v: &mut Validator, raw: &str) -> Option<String> {
    v.check("caption", bounded_text(raw, MAX_CAPTION))
}

/// Creates a post.
pub async fn create(state: &AppState, me: Id, req: CreatePost) -> AppResult<PostView> {
    access::may_write(state, me).await?;
    state.limits.write(Write::Post, me).await?;
    let mut v = Validator::new();
    let caption = validate_caption(&mut v, req.caption.as_deref().unwrap_or("")).unwrap_or_default();
    if req.media_ids.len() > MAX_MEDIA {
        v.fail("media_ids", format!("at most {MAX_MEDIA} media items"));
    }
    if caption.is_empty() && req.media_ids.is_empty() {
        v.fail("caption", "a post needs a caption or media");
    }
    v.finish()?;
    let tags = parse_hashtags(&caption);
    let mentions = resolve_mentions(state, me, &caption).await?;
    let id = state.ids.next();
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    store::insert(tx.ex(), &NewPost { id, author_id: me, caption: &caption, has_image: false, has_video: false, now })
        .await?;
    let (has_image, has_video) = media::attach_to_post(state, &mut tx, me, id, &req.media_ids).await?;
    if has_image || has_video {
        store::set_media_flags(tx.ex(), id, has_image, has_video).await?;
    }
    store::set_hashtags(tx.ex(), id, &tags).await?;
    store::set_mentions(tx.ex(), id, &mentions).await?;
    if !mentions.is_empty() {
        let cause = Cause::Mentioned { post: id, comment: None, users: mentions.clone() };
        notifications::enqueue(state, &mut tx, cause).await?;
    }
    let job = FanOutPost { post: id, author: me, change: PostChange::Created };
    jobs::enqueue(&mut tx, &state.ids, state.config.jobs.max_attempts, &job).await?;
    state.commit(tx, EventBatch::new()).await?;

    let row = PostRow {
        id,
        author_id: me,
        caption,
        has_image,
        has_video,
        comment_count: 0,
        reaction_count: 0,
        created_at: now,
        updated_at: now,
    };
    let view = views(state, Some(me), vec![row]).await?.pop().ok_or(AppError::NotFound)?;
    let mut events = EventBatch::by(me);
    events.ephemeral(&[Topic::User(me)], EventName::PostCreated, &view.neutral());
    state.publish(events);
    Ok(view)
}

/// One post, if the viewer may see it.
pub async fn get(state: &AppState, viewer: Option<Id>, id: Id) -> AppResult<PostView> {
    let (post, _) = access::visible_post(state, viewer, id).await?;
    views(state, viewer, vec![post]).await?.pop().ok_or(AppError::NotFound)
}

/// Changes a post's caption (author only); hashtags and mentions are parsed again.
pub async fn update(state: &AppState, me: Id, id: Id, req: UpdatePost) -> AppResult<PostView> {
    let (post, _) = access::visible_post(state, Some(me), id).await?;
    if post.author_id != me {
        return Err(AppError::Forbidden("only the author can edit a post"));
    }
    let mut v = Validator::new();
    let caption = validate_caption(&mut v, &req.caption).unwrap_or_default();
    if caption.is_empty() && !(post.has_image || post.has_video) {
        v.fail("caption", "a post without media needs a caption");
    }
    v.finish()?;
    let tags = parse_hashtags(&caption);
    let mentions = resolve_mentions(state, me, &caption).await?;
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    let mut row = store::lock(tx.ex(), id, RowLock::NoKeyUpdate).await?.ok_or(AppError::NotFound)?;
    store::update_caption(tx.ex(), id, &caption, now).await?;
    store::set_hashtags(tx.ex(), id, &tags).await?;
    let before: Vec<Id> = store::mentions_of(tx.ex(), &[id]).await?.into_iter().map(|m| m.1).collect();
    store::set_mentions(tx.ex(), id, &mentions).await?;
    let added: Vec<Id> = mentions.iter().copied().filter(|m| !before.contains(m)).collect();
    if !added.is_empty() {
        notifications::enqueue(state, &mut tx, Cause::Mentioned { post: id, comment: None, users: added }).await?;
    }
    let job = FanOutPost { post: id, author: me, change: PostChange::Updated };
    jobs::enqueue(&mut tx, &state.ids, state.config.jobs.max_attempts, &job).await?;
    state.commit(tx, EventBatch::new()).await?;

    row.caption = caption;
    row.updated_at = now;
    let view = views(state, Some(me), vec![row]).await?.pop().ok_or(AppError::NotFound)?;
    let mut events = EventBatch::by(me);
    events.ephemeral(&[Topic::User(me), Topic::Post(id)], EventName::PostUpdated, &view.neutral());
    state.publish(events);
    Ok(view)
}

/// Deletes a post (author only), its comments and reactions, and schedules its media for
/// durable deletion.
pub async fn delete(state: &AppState, me: Id, id: Id) -> AppResult<()> {
    let (post, _) = access::visible_post(state, Some(me), id).await?;
    if post.author_id != me {
        return Err(AppError::Forbidden("only the author can delete a post"));
    }
    remove(state, id, me).await
}

/// Removes post `id` of `author` — its author's deletion or a moderator's removal alike:
/// comments and reactions go, media are deleted durably, feeds drop it (the fan-out job)
/// and `post.deleted` reaches its watchers. `404` when it is already gone.
pub async fn remove(state: &AppState, id: Id, author: Id) -> AppResult<()> {
    let mut tx = state.store.begin().await?;
    store::lock(tx.ex(), id, RowLock::Update).await?.ok_or(AppError::NotFound)?;
    media::release_post_media(state, &mut tx, id).await?;
    store::delete(tx.ex(), id, author).await?;
    let job = FanOutPost { post: id, author, change: PostChange::Deleted };
    jobs::enqueue(&mut tx, &state.ids, state.config.jobs.max_attempts, &job).await?;
    let mut events = EventBatch::by(author);
    events.ephemeral(&[Topic::User(author), Topic::Post(id)], EventName::PostDeleted, &PostDeleted { id });
    state.commit(tx, events).await?;
    Ok(())
}

/// Saves a post the caller may see (idempotent).
pub async fn save(state: &AppState, me: Id, id: Id) -> AppResult<()> {
    access::visible_post(state, Some(me), id).await?;
    let mut tx = state.store.begin().await?;
    store::lock(tx.ex(), id, RowLock::KeyShare).await?.ok_or(AppError::NotFound)?;
    saves::save(tx.ex(), me, id, Timestamp::now()).await?;
    state.commit(tx, EventBatch::new()).await?;
    Ok(())
}

/// Removes a save (idempotent). A save of mine goes whatever became of the post (mine to
/// remove even after a block); with nothing to remove, `404` unless the post is visible —
/// otherwise the answer would tell which invisible ids exist.
pub async fn unsave(state: &AppState, me: Id, id: Id) -> AppResult<()> {
    let mut tx = state.store.begin().await?;
    let removed = saves::unsave(tx.ex(), me, id).await?;
    state.commit(tx, EventBatch::new()).await?;
    if !removed {
        access::visible_post(state, Some(me), id).await?;
    }
    Ok(())
}

/// Every post the viewer may see, newest first, optionally only with images or videos.
pub async fn list(state: &AppState, viewer: Option<Id>, q: &PostListQuery) -> AppResult<Page<PostView>> {
    let has = match q.has.as_deref() {
        None | Some("") => None,
        Some("image") => Some(HasMedia::Image),
        Some("video") => Some(HasMedia::Video),
        Some(_) => return Err(AppError::field("has", "must be image or video")),
    };
    let page = PageQuery { cursor: q.cursor.clone(), limit: q.limit }.parse::<Id>()?;
    let store_ = state.store.clone();
    let scan = scan_visible(state, viewer, page.limit, page.after, |after, n| {
        let store_ = store_.clone();
        async move {
            let mut c = store_.conn().await?;
            Ok(store::recent(c.ex(), has, after, n).await?.into_iter().map(|p| (p.id, p)).collect())
        }
    })
    .await?;
    page_of(state, viewer, scan).await
}

/// A profile's posts, newest first (`403` for a private account one does not follow).
pub async fn by_user(
    state: &AppState,
    viewer: Option<Id>,
    id_or_name: &str,
    q: &PageQuery,
) -> AppResult<Page<PostView>> {
    let author = access::content_owner(state, viewer, id_or_name).await?;
    let page = q.parse::<Id>()?;
    let mut c = state.store.conn().await?;
    let rows = store::by_authors(c.ex(), &[author.id], page.after, crate::store::fetch_limit(page.limit)).await?;
    drop(c);
    let page = Page::from_rows(rows, page.limit, |p| p.id);
    Ok(Page { items: views(state, viewer, page.items).await?, next_cursor: page.next_cursor })
}

/// The caller's saved posts that they may still see, newest save first.
pub async fn saved(state: &AppState, me: Id, q: &PageQuery) -> AppResult<Page<PostView>> {
    let page = q.parse::<(i64, Id)>()?;
    let store_ = state.store.clone();
    let scan = scan_visible(state, Some(me), page.limit, page.after, |after, n| {
        let store_ = store_.clone();
        async move {
            let mut c = store_.conn().await?;
            Ok(saves::page(c.ex(), me, after, n).await?.into_iter().map(|(t, p)| ((t.0, p.id), p)).collect())
        }
    })
    .await?;
    page_of(state, Some(me), scan).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashtags_are_unicode_lowercase_and_deduplicated() {
        assert_eq!(parse_hashtags("#Rust and #rust, #Café_2024! #日本"), vec!["rust", "café_2024", "日本"]);
        assert_eq!(parse_hashtags("C# is not a tag, nor is a#b, but (#yes) is"), vec!["yes"]);
        assert!(parse_hashtags("# #").is_empty());
        assert_eq!(parse_hashtags("#a#b"), vec!["a"]);
    }

    #[test]
    fn mentions_skip_emails_and_trailing_dots() {
        assert_eq!(parse_mentions("hi @Alice and @bob.smith. mail me@example.com"), vec!["alice", "bob.smith"]);
        assert_eq!(parse_mentions("@ab is too short, @@carol is odd, (@dave)"), vec!["dave"]);
    }
}
