//! Feeds: fan-out on write into timelines (table, and Redis sorted sets), fan-out on read
//! for big accounts, pagination while posts arrive, correctness after follow changes,
//! blocks, mutes, deletions and approvals, feed events, explore and hashtags.

use std::collections::HashSet;
use std::time::Duration;

use chorus::domain::Id;
use chorus::services::feed::timeline_len;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::posts::{expect_event, follow, ids, jobs_drained, make_private, new_post, quick_users};
use crate::support::{Backend, TestApp, TestUser, eventually, redis_available, redis_url};

both_backends!(
    home_feed_pages_without_gaps_or_duplicates_while_posts_arrive,
    home_feed_stays_correct_after_unfollow_block_mute_delete_and_approval,
    home_feed_on_redis_timelines,
    new_posts_are_published_on_followers_feed_topics,
    big_accounts_are_merged_at_read_time,
    an_account_that_stops_being_big_keeps_its_posts_in_feeds,
    posts_skipped_during_a_copy_are_left_for_the_next_round,
    explore_ranks_engaged_public_posts_of_strangers,
    hashtag_feed_lists_visible_tagged_posts,
);

async fn feed(app: &TestApp, u: &TestUser, query: &str) -> Value {
    let (s, page) = app.get(&format!("/feed{query}"), u.bearer()).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    page
}

async fn feed_ids(app: &TestApp, u: &TestUser) -> Vec<String> {
    ids(&feed(app, u, "?limit=100").await)
}

/// Waits until `u`'s first feed page is exactly `expected` (fan-out runs as a job).
async fn feed_becomes(app: &TestApp, u: &TestUser, expected: &[String]) {
    let expected = expected.to_vec();
    eventually(Duration::from_secs(15), || async {
        let got = feed_ids(app, u).await;
        (got == expected).then_some(())
    })
    .await;
}

async fn stored(app: &TestApp, u: &TestUser) -> i64 {
    timeline_len(&app.state, u.id.parse::<Id>().unwrap()).await.unwrap()
}

/// Waits until `u`'s stored timeline holds `n` entries (written by jobs).
async fn stored_becomes(app: &TestApp, u: &TestUser, n: i64) {
    eventually(Duration::from_secs(15), || async { (stored(app, u).await == n).then_some(()) }).await;
}

/// The core home-feed scenario, run on the table and on Redis timelines.
async fn paginates_while_posts_arrive(app: &TestApp) {
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let cat = app.register("cat").await;
    let stranger = app.register("stranger").await;
    follow(app, &ann, &bob).await;
    follow(app, &ann, &cat).await;
    let mut expected = Vec::new();
    for i in 0..12 {
        let author = if i % 2 == 0 { &bob } else { &cat };
        expected.push(new_post(app, author, &format!("post {i}")).await);
        if i % 5 == 0 {
            expected.push(new_post(app, &ann, &format!("my own {i}")).await);
        }
        new_post(app, &stranger, "not followed").await;
    }
    expected.reverse();
    feed_becomes(app, &ann, &expected).await;
    stored_becomes(app, &ann, 12).await; // own posts are merged at read time, not stored

    // Page with limit 5 while new posts keep arriving between pages.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut fresh = Vec::new();
    for round in 0.. {
        assert!(round < 100, "the cursor does not advance");
        let q = match &cursor {
            Some(c) => format!("?limit=5&cursor={c}"),
            None => "?limit=5".into(),
        };
        let page = feed(app, &ann, &q).await;
        seen.extend(ids(&page));
        fresh.push(new_post(app, &bob, "arrived while paging").await);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.into()),
            None => break,
        }
    }
    assert_eq!(seen, expected, "no gap, no duplicate, original order");
    fresh.reverse();
    let mut newest = fresh.clone();
    newest.extend(expected.clone());
    feed_becomes(app, &ann, &newest).await;
    assert_eq!(app.get("/feed", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/feed?cursor=nope", ann.bearer()).await.0, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Unfollow, mute, delete and block show at once (read-time filter); approval shows once
/// the backfill job ran; the clean-up jobs tidy the stored timeline.
async fn stays_correct(app: &TestApp) {
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let cat = app.register("cat").await;
    let dan = app.register("dan").await;
    let eve = app.register("eve").await;
    make_private(app, &dan).await;
    let d1 = new_post(app, &dan, "dan before approval").await;
    for u in [&bob, &cat, &eve] {
        follow(app, &ann, u).await;
    }
    assert_eq!(follow(app, &ann, &dan).await, "pending");
    let b1 = new_post(app, &bob, "bob").await;
    let c1 = new_post(app, &cat, "cat").await;
    let e1 = new_post(app, &eve, "eve").await;
    let a1 = new_post(app, &ann, "ann").await;
    feed_becomes(app, &ann, &[a1.clone(), e1.clone(), c1.clone(), b1.clone()]).await;

    // Approval: dan's earlier post is backfilled by a job.
    let (s, _) = app.post(&format!("/users/me/follow-requests/{}/approve", ann.id), dan.bearer(), json!({})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    feed_becomes(app, &ann, &[a1.clone(), e1.clone(), c1.clone(), b1.clone(), d1.clone()]).await;
    stored_becomes(app, &ann, 4).await;

    // Unfollow: gone at once; the job then prunes the stored timeline.
    app.call(Method::DELETE, &format!("/users/{}/follow", cat.id), ann.bearer(), None).await;
    assert_eq!(feed_ids(app, &ann).await, vec![a1.clone(), e1.clone(), b1.clone(), d1.clone()]);
    stored_becomes(app, &ann, 3).await;

    // Mute: hidden from the feed only; unmute brings it back.
    assert_eq!(app.post(&format!("/users/{}/mute", bob.id), ann.bearer(), json!({})).await.0, StatusCode::NO_CONTENT);
    assert_eq!(feed_ids(app, &ann).await, vec![a1.clone(), e1.clone(), d1.clone()]);
    assert_eq!(app.get(&format!("/posts/{b1}"), ann.bearer()).await.0, StatusCode::OK, "mute hides nothing else");
    let b2 = new_post(app, &bob, "bob while muted").await;
    jobs_drained(app).await;
    assert_eq!(feed_ids(app, &ann).await, vec![a1.clone(), e1.clone(), d1.clone()]);
    app.call(Method::DELETE, &format!("/users/{}/mute", bob.id), ann.bearer(), None).await;
    assert_eq!(feed_ids(app, &ann).await, vec![b2.clone(), a1.clone(), e1.clone(), b1.clone(), d1.clone()]);

    // Delete: gone at once.
    app.call(Method::DELETE, &format!("/posts/{b2}"), bob.bearer(), None).await;
    assert_eq!(feed_ids(app, &ann).await, vec![a1.clone(), e1.clone(), b1.clone(), d1.clone()]);

    // Block (by the author): gone at once; the follow is gone and the job prunes.
    app.post(&format!("/users/{}/block", ann.id), eve.bearer(), json!({})).await;
    assert_eq!(feed_ids(app, &ann).await, vec![a1.clone(), b1.clone(), d1.clone()]);
    jobs_drained(app).await;
    let b_and_d = 2;
    stored_becomes(app, &ann, b_and_d).await;

    // Edits show up in the feed (rows are read fresh).
    app.call(Method::PATCH, &format!("/posts/{b1}"), bob.bearer(), Some(json!({"caption": "bob, edited"}))).await;
    let page = feed(app, &ann, "").await;
    let edited = page["items"].as_array().unwrap().iter().find(|p| p["id"] == b1.as_str()).unwrap();
    assert_eq!(edited["caption"], "bob, edited");
}

async fn home_feed_pages_without_gaps_or_duplicates_while_posts_arrive(b: Backend) {
    let app = TestApp::spawn(b).await;
    paginates_while_posts_arrive(&app).await;
}

async fn home_feed_stays_correct_after_unfollow_block_mute_delete_and_approval(b: Backend) {
    let app = TestApp::spawn(b).await;
    stays_correct(&app).await;
}

/// The same scenarios with timelines in Redis sorted sets.
async fn home_feed_on_redis_timelines(b: Backend) {
    if !redis_available().await {
        return;
    }
    let spawn = || {
        TestApp::spawn_with(b, |c| {
            c.redis_url = Some(redis_url());
            c.redis_namespace = format!("t{}", rand::random::<u64>());
            c.jwt_secret = Some("a-test-secret-that-is-at-least-32-chars".into());
        })
    };
    let app = spawn().await;
    assert!(app.state.redis.is_some());
    paginates_while_posts_arrive(&app).await;
    let app = spawn().await;
    stays_correct(&app).await;
    let app = spawn().await;
    survives_a_redis_that_restarts_empty(&app).await;
}

/// A Redis that restarts empty (here: every key of the app's namespace deleted) loses no
/// post from feeds: each timeline is rebuilt from the database on its next read.
async fn survives_a_redis_that_restarts_empty(app: &TestApp) {
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    follow(app, &ann, &bob).await;
    let mut expected = Vec::new();
    for i in 0..3 {
        expected.push(new_post(app, &bob, &format!("before {i}")).await);
    }
    expected.reverse();
    feed_becomes(app, &ann, &expected).await;
    jobs_drained(app).await;

    let mut redis = app.state.redis.clone().unwrap();
    let pattern = format!("{}:*", app.state.config.redis_namespace);
    let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut redis).await.unwrap();
    assert!(keys.iter().any(|k| k.ends_with(&format!(":tl:{}", ann.id))), "{keys:?}");
    redis::cmd("DEL").arg(&keys).query_async::<()>(&mut redis).await.unwrap();
    assert_eq!(stored(app, &ann).await, 0, "the timeline is gone");

    assert_eq!(feed_ids(app, &ann).await, expected, "rebuilt from the database on read");
    assert_eq!(stored(app, &ann).await, 3);
    expected.insert(0, new_post(app, &bob, "after").await);
    feed_becomes(app, &ann, &expected).await; // fan-out goes on into the rebuilt timeline
}

async fn new_posts_are_published_on_followers_feed_topics(b: Backend) {
    let app = TestApp::spawn(b).await;
    let zed = app.register("zed").await;
    let ann = app.register("ann").await;
    let mia = app.register("mia").await;
    follow(&app, &ann, &zed).await;
    follow(&app, &mia, &zed).await;
    app.post(&format!("/users/{}/mute", zed.id), mia.bearer(), json!({})).await;
    let mut tap = app.state.hub.tap();
    let post = new_post(&app, &zed, "hello followers").await;
    // One batch: the author's own feed first, then each follower's.
    let (_, own) = expect_event(&mut tap, &format!("feed:{}", zed.id), "post.created").await;
    assert_eq!(own["id"], post.as_str());
    let (seq, data) = expect_event(&mut tap, &format!("feed:{}", ann.id), "post.created").await;
    assert!(seq.is_some(), "feed events are durable");
    assert_eq!(data["id"], post.as_str());
    assert_eq!(data["saved"], false);
    jobs_drained(&app).await;
    let mut c = app.state.store.conn().await.unwrap();
    let (last, _) = chorus::store::events::bounds(c.ex(), &format!("feed:{}", mia.id)).await.unwrap();
    assert_eq!(last, 0, "a follower who muted the author gets no feed event");
    drop(c);

    app.call(Method::PATCH, &format!("/posts/{post}"), zed.bearer(), Some(json!({"caption": "edited"}))).await;
    let (_, data) = expect_event(&mut tap, &format!("feed:{}", ann.id), "post.updated").await;
    assert_eq!(data["caption"], "edited");
    app.call(Method::DELETE, &format!("/posts/{post}"), zed.bearer(), None).await;
    let (_, data) = expect_event(&mut tap, &format!("feed:{}", ann.id), "post.deleted").await;
    assert_eq!(data, json!({"id": post}));
}

async fn big_accounts_are_merged_at_read_time(b: Backend) {
    let app = TestApp::spawn_with(b, |c| c.feed.fanout_read_threshold = 1).await;
    let star = app.register("star").await;
    let small = app.register("small").await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    follow(&app, &ann, &star).await;
    follow(&app, &bob, &star).await; // star: 2 followers > threshold 1
    follow(&app, &ann, &small).await;
    // Each follow queues a backfill job; let them run while there is nothing to backfill. A
    // backfill that ran after the posts would copy star's posts into ann's timeline (harmless
    // for reads, which deduplicate) and make the count below depend on job timing.
    jobs_drained(&app).await;

    let mut tap = app.state.hub.tap();
    let mut expected = Vec::new();
    for i in 0..6 {
        expected.push(new_post(&app, &star, &format!("star {i}")).await);
        expected.push(new_post(&app, &small, &format!("small {i}")).await);
    }
    expected.reverse();
    let (_, data) = expect_event(&mut tap, &format!("user:{}", star.id), "post.created").await;
    assert_eq!(data["author"]["username"], "star");
    jobs_drained(&app).await;
    assert_eq!(stored(&app, &ann).await, 6, "only the small account was fanned out");
    assert_eq!(stored(&app, &bob).await, 0);
    let mut c = app.state.store.conn().await.unwrap();
    let events = chorus::store::events::after(c.ex(), &format!("feed:{}", bob.id), 0, 100).await.unwrap();
    assert!(events.is_empty(), "big accounts publish on user:{{id}}, not on followers' feeds");
    drop(c);

    assert_eq!(feed_ids(&app, &ann).await, expected, "merged in id order");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for round in 0.. {
        assert!(round < 100, "the cursor does not advance");
        let q = cursor.as_ref().map(|c| format!("?limit=4&cursor={c}")).unwrap_or("?limit=4".into());
        let page = feed(&app, &ann, &q).await;
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.into()),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    // Unfollowing a big account is immediate too.
    app.call(Method::DELETE, &format!("/users/{}/follow", star.id), ann.bearer(), None).await;
    let smalls: Vec<String> = expected.iter().step_by(2).cloned().collect(); // newest first: small, star, small, …
    assert_eq!(feed_ids(&app, &ann).await, smalls);
}

/// Posts written while an account was big were never fanned out; reads keep merging them
/// until, the account back at the threshold, a job has copied them into its followers'
/// timelines. Run on the table and, where Redis is up, on Redis timelines.
async fn an_account_that_stops_being_big_keeps_its_posts_in_feeds(b: Backend) {
    let timelines = if redis_available().await { vec![false, true] } else { vec![false] };
    for redis in timelines {
        let app = TestApp::spawn_with(b, |c| {
            c.feed.fanout_read_threshold = 20;
            if redis {
                c.redis_url = Some(redis_url());
                c.redis_namespace = format!("t{}", rand::random::<u64>());
                c.jwt_secret = Some("a-test-secret-that-is-at-least-32-chars".into());
            }
        })
        .await;
        let unfanned = |u: &TestUser| {
            let (state, id) = (app.state.clone(), u.id.parse::<Id>().unwrap());
            async move {
                let mut c = state.store.conn().await.unwrap();
                chorus::store::users::fan_out_state(c.ex(), id).await.unwrap().unwrap().1
            }
        };
        let star = app.register("star").await;
        let ann = app.register("ann").await;
        let fans = quick_users(&app, "fan", 20).await;
        follow(&app, &ann, &star).await;
        for f in &fans {
            follow(&app, f, &star).await; // 21 followers: above the threshold
        }
        jobs_drained(&app).await;
        let mut posts = Vec::new();
        for i in 0..3 {
            posts.push(new_post(&app, &star, &format!("big {i}")).await);
        }
        posts.reverse();
        jobs_drained(&app).await;
        assert_eq!(stored(&app, &ann).await, 0, "a big account is not fanned out");
        let range = unfanned(&star).await.expect("skipped posts are recorded");
        assert_eq!((range.0.to_string(), range.1.to_string()), (posts[2].clone(), posts[0].clone()));
        assert_eq!(feed_ids(&app, &ann).await, posts, "merged at read time");

        // 21 → 20: fan-out applies again, and the skipped posts are copied.
        app.call(Method::DELETE, &format!("/users/{}/follow", star.id), fans[0].bearer(), None).await;
        jobs_drained(&app).await;
        assert_eq!(unfanned(&star).await, None, "all copied");
        assert_eq!(stored(&app, &ann).await, 3);
        assert_eq!(stored(&app, &fans[1]).await, 3);
        assert_eq!(stored(&app, &fans[0]).await, 0, "not for the one who left");
        assert_eq!(feed_ids(&app, &ann).await, posts, "nothing lost when merging stops");
        posts.insert(0, new_post(&app, &star, "fanned out").await);
        jobs_drained(&app).await;
        assert_eq!(stored(&app, &ann).await, 4, "20 followers: fanned out on write");
        assert_eq!(feed_ids(&app, &ann).await, posts);

        // An account that never went above the threshold has nothing recorded to copy.
        let small = app.register("small").await;
        follow(&app, &ann, &small).await;
        new_post(&app, &small, "small").await;
        app.call(Method::DELETE, &format!("/users/{}/follow", small.id), ann.bearer(), None).await;
        jobs_drained(&app).await;
        assert_eq!(unfanned(&small).await, None);
    }
}

/// The skipped-post range on the author's row: it widens to cover each skipped post, a
/// finished copy clears it, and a post skipped while the copy ran stays for the next round.
async fn posts_skipped_during_a_copy_are_left_for_the_next_round(b: Backend) {
    use chorus::store::users::{fan_out_state, finish_unfanned, mark_unfanned};
    let app = TestApp::spawn(b).await;
    let star = app.register("star").await.id.parse::<Id>().unwrap();
    let mut tx = app.state.store.begin().await.unwrap();
    let range = |s: Option<(i64, Option<(Id, Id)>)>| s.unwrap().1.map(|(a, b)| (a.0, b.0));
    assert_eq!(range(fan_out_state(tx.ex(), star).await.unwrap()), None);
    for post in [200, 100, 150] {
        mark_unfanned(tx.ex(), star, Id(post)).await.unwrap();
    }
    assert_eq!(range(fan_out_state(tx.ex(), star).await.unwrap()), Some((100, 200)));
    assert_eq!(finish_unfanned(tx.ex(), star, Id(200)).await.unwrap(), None, "all copied");
    assert_eq!(range(fan_out_state(tx.ex(), star).await.unwrap()), None);

    mark_unfanned(tx.ex(), star, Id(300)).await.unwrap();
    // The job read the range (300..300) and copies; meanwhile fan-out skips post 400.
    mark_unfanned(tx.ex(), star, Id(400)).await.unwrap();
    assert_eq!(finish_unfanned(tx.ex(), star, Id(300)).await.unwrap(), Some(0), "a round is left, 0 followers");
    assert_eq!(range(fan_out_state(tx.ex(), star).await.unwrap()), Some((301, 400)));
    tx.commit().await.unwrap();
}

async fn explore_ranks_engaged_public_posts_of_strangers(b: Backend) {
    let app = TestApp::spawn(b).await;
    let me = app.register("me_user").await;
    let friend = app.register("friend").await;
    let s1 = app.register("stranger1").await;
    let s2 = app.register("stranger2").await;
    let private = app.register("private").await;
    let muted = app.register("muted").await;
    let blocker = app.register("blocker").await;
    make_private(&app, &private).await;
    follow(&app, &me, &friend).await;
    app.post(&format!("/users/{}/mute", muted.id), me.bearer(), json!({})).await;
    app.post(&format!("/users/{}/block", me.id), blocker.bearer(), json!({})).await;

    let f = new_post(&app, &friend, "friend").await;
    let s1a = new_post(&app, &s1, "s1a").await;
    let s2a = new_post(&app, &s2, "s2a").await;
    let s1b = new_post(&app, &s1, "s1b").await;
    let p = new_post(&app, &private, "private").await;
    let m = new_post(&app, &muted, "muted").await;
    let bl = new_post(&app, &blocker, "blocker").await;
    new_post(&app, &me, "mine").await;
    for u in [&friend, &s1, &muted] {
        app.call(Method::PUT, &format!("/posts/{s2a}/reaction"), u.bearer(), Some(json!({"type": "love"}))).await;
    }

    let (s, page) = app.get("/explore", me.bearer()).await;
    assert_eq!(s, StatusCode::OK);
    let expected = vec![s2a.clone(), s1b.clone(), s1a.clone()];
    assert_eq!(ids(&page), expected, "engagement first, then recency; no follows, private, muted, blocked or own");

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for round in 0.. {
        assert!(round < 100, "the cursor does not advance");
        let q = cursor.as_ref().map(|c| format!("/explore?limit=1&cursor={c}")).unwrap_or("/explore?limit=1".into());
        let (_, page) = app.get(&q, me.bearer()).await;
        seen.extend(ids(&page));
        new_post(&app, &s2, "arrives while paging").await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.into()),
            None => break,
        }
    }
    assert_eq!(seen, expected, "a frozen window: no gap, no duplicate");

    let (_, anon) = app.get("/explore?limit=100", None).await;
    let anon: HashSet<String> = ids(&anon).into_iter().collect();
    for visible in [&f, &s1a, &s2a, &s1b, &m, &bl] {
        assert!(anon.contains(visible), "anonymous explore shows every public post");
    }
    assert!(!anon.contains(&p), "never a private account's post");
    assert_eq!(app.get("/explore?cursor=bad", None).await.0, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn hashtag_feed_lists_visible_tagged_posts(b: Backend) {
    let app = TestApp::spawn(b).await;
    let ann = app.register("ann").await;
    let pia = app.register("pia").await;
    let fan = app.register("fan").await;
    make_private(&app, &pia).await;
    follow(&app, &fan, &pia).await;
    app.post(&format!("/users/me/follow-requests/{}/approve", fan.id), pia.bearer(), json!({})).await;
    let mut public = Vec::new();
    for i in 0..5 {
        public.push(new_post(&app, &ann, &format!("#Rust day {i}")).await);
    }
    let hidden = new_post(&app, &pia, "#rust in private").await;
    new_post(&app, &ann, "#go elsewhere").await;
    public.reverse();

    let (s, page) = app.get("/tags/rust/posts?limit=3", None).await;
    assert_eq!(s, StatusCode::OK);
    let mut got = ids(&page);
    let (_, page2) =
        app.get(&format!("/tags/%23RUST/posts?limit=3&cursor={}", page["next_cursor"].as_str().unwrap()), None).await;
    got.extend(ids(&page2));
    assert_eq!(got, public, "a private account's post stays hidden from strangers");
    let (_, fan_view) = app.get("/tags/rust/posts", fan.bearer()).await;
    assert_eq!(ids(&fan_view)[0], hidden, "an approved follower sees it");
    assert_eq!(app.get("/tags/no%20spaces/posts", None).await.0, StatusCode::UNPROCESSABLE_ENTITY);
}
