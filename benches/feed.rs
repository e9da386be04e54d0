//! Home-feed benchmark (a bench binary, not a timed test): `cargo bench --bench feed`.
//!
//! Seeds a SQLite database with 10,000 users, a power-law follow graph (a few accounts
//! followed by thousands, most by a handful; one account followed by exactly 5,000) and
//! 100,000 posts (prolific authors post more), straight through the store with bulk inserts,
//! and builds the timelines fan-out on write would have built. Then it measures, through the
//! service layer (`services::feed::home`, what `GET /feed` calls):
//! - page 1 and page 10 (20 posts a page) of home feeds: p50/p99 latency, sequential reads/s,
//!   and reads/s with 4 concurrent readers;
//! - the cost of one post by the 5,000-follower account: the `FanOutPost` job (5,000
//!   timeline rows and 5,001 durable `feed` events in one transaction);
//! - the same reads with the fan-out-on-read threshold lowered to 1,000 followers, so that
//!   the biggest accounts are merged at read time (the hybrid's read-side cost).

use std::collections::{BinaryHeap, HashSet};
use std::time::{Duration, Instant};

use chorus::app::Chorus;
use chorus::config::Config;
use chorus::domain::{Id, Timestamp};
use chorus::events::{EventBatch, EventName, Topic};
use chorus::pagination::PageQuery;
use chorus::services::feed::{self, FanOutPost, PostChange};
use chorus::state::AppState;
use chorus::store::posts::NewPost;
use chorus::store::{graph, posts, timelines, users};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const USERS: usize = 10_000;
const POSTS: usize = 100_000;
const CELEBRITY_FOLLOWERS: usize = 5_000;
const PAGE: u32 = 20;

/// Samples an index `1..n` with probability ∝ 1 / rank^exponent (a Zipf-like law).
struct PowerLaw {
    cumulative: Vec<f64>,
}

impl PowerLaw {
    fn new(n: usize, exponent: f64) -> Self {
        let mut acc = 0.0;
        let cumulative = (1..n)
            .map(|r| {
                acc += 1.0 / (r as f64).powf(exponent);
                acc
            })
            .collect();
        Self { cumulative }
    }

    fn sample(&self, rng: &mut StdRng) -> usize {
        let x = rng.r#gen::<f64>() * self.cumulative.last().unwrap();
        self.cumulative.partition_point(|c| *c < x) + 1
    }
}

/// Log-normal out-degree: median e^mu.
fn out_degree(rng: &mut StdRng) -> usize {
    let (u1, u2): (f64, f64) = (rng.r#gen::<f64>().max(1e-12), rng.r#gen());
    let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (3.2 + 1.0 * normal).exp().clamp(3.0, 2_000.0) as usize
}

struct Data {
    users: Vec<Id>,
    /// Who each user follows (indices).
    following: Vec<Vec<usize>>,
    /// Followers per user.
    followers: Vec<usize>,
    /// Post ids per author, newest first.
    posts_by: Vec<Vec<Id>>,
}

async fn seed(state: &AppState) -> anyhow::Result<Data> {
    let mut rng = StdRng::seed_from_u64(7);
    let started = Instant::now();
    let users: Vec<Id> = (0..USERS).map(|_| state.ids.next()).collect();
    let mut tx = state.store.begin().await?;
    let now = Timestamp::now();
    for (i, id) in users.iter().enumerate() {
        let name = format!("bench{i:05}");
        let email = format!("{name}@example.com");
        let new =
            users::NewUser { id: *id, username: &name, email: &email, password_hash: "x", display_name: &name, now };
        users::insert(tx.ex(), &new).await?;
    }
    tx.commit().await?;

    // Follows: account 0 is followed by exactly 5,000; the others by a power law.
    let popularity = PowerLaw::new(USERS, 0.9);
    let mut following: Vec<Vec<usize>> = vec![Vec::new(); USERS];
    let mut followers = vec![0usize; USERS];
    for (u, out) in following.iter_mut().enumerate() {
        let mut set = HashSet::new();
        if (1..=CELEBRITY_FOLLOWERS).contains(&u) {
            set.insert(0);
        }
        let want = out_degree(&mut rng);
        let mut tries = 0;
        while set.len() < want && tries < want * 20 {
            tries += 1;
            let t = popularity.sample(&mut rng);
            if t != u {
                set.insert(t);
            }
        }
        for t in &set {
            followers[*t] += 1;
        }
        *out = set.into_iter().collect();
    }
    let pairs: Vec<(Id, Id)> = following
        .iter()
        .enumerate()
        .flat_map(|(u, out)| out.iter().map(move |t| (u, *t)))
        .map(|(u, t)| (users[u], users[t]))
        .collect();
    let mut tx = state.store.begin().await?;
    graph::insert_follows_bulk(tx.ex(), &pairs, now).await?;
    graph::recount_follows(tx.ex()).await?;
    tx.commit().await?;

    // Posts: prolific authors post more; one every 20 s over the last ~23 days.
    let activity = PowerLaw::new(USERS, 0.6);
    let start = now.0 - POSTS as i64 * 20_000;
    let mut posts_by: Vec<Vec<Id>> = vec![Vec::new(); USERS];
    let mut batch = Vec::with_capacity(5_000);
    for k in 0..POSTS {
        let author = activity.sample(&mut rng);
        let id = state.ids.next();
        posts_by[author].push(id);
        batch.push((id, users[author], format!("post {k} #tag{}", k % 50), Timestamp(start + k as i64 * 20_000)));
        if batch.len() == 5_000 || k == POSTS - 1 {
            let mut tx = state.store.begin().await?;
            posts::insert_bulk(tx.ex(), &batch).await?;
            tx.commit().await?;
            batch.clear();
        }
    }
    let mut tx = state.store.begin().await?;
    posts::recount_posts(tx.ex()).await?;
    tx.commit().await?;
    for p in &mut posts_by {
        p.reverse();
    }
    println!(
        "seeded {USERS} users, {} follows (max followers {}, median following {}), {POSTS} posts in {:.1?}",
        pairs.len(),
        followers.iter().max().unwrap(),
        {
            let mut d: Vec<usize> = following.iter().map(Vec::len).collect();
            d.sort_unstable();
            d[d.len() / 2]
        },
        started.elapsed()
    );
    Ok(Data { users, following, followers, posts_by })
}

/// Writes the timelines fan-out on write would hold: per user, the newest `max_len` posts of
/// the followed accounts at or below `threshold` followers (a k-way merge).
async fn build_timelines(state: &AppState, d: &Data, threshold: usize, max_len: usize) -> anyhow::Result<usize> {
    let started = Instant::now();
    let mut tx = state.store.begin().await?;
    timelines::clear_all(tx.ex()).await?;
    tx.commit().await?;
    let mut rows = Vec::with_capacity(200_000);
    let mut total = 0;
    for (u, out) in d.following.iter().enumerate() {
        let mut heap: BinaryHeap<(Id, usize, usize)> = BinaryHeap::new();
        for &a in out.iter().filter(|a| d.followers[**a] <= threshold) {
            if let Some(p) = d.posts_by[a].first() {
                heap.push((*p, a, 0));
            }
        }
        let mut n = 0;
        while let Some((p, a, i)) = heap.pop() {
            rows.push((d.users[u], p, d.users[a]));
            n += 1;
            if n == max_len {
                break;
            }
            if let Some(next) = d.posts_by[a].get(i + 1) {
                heap.push((*next, a, i + 1));
            }
        }
        if rows.len() >= 100_000 || u == d.following.len() - 1 {
            let mut tx = state.store.begin().await?;
            timelines::insert_bulk(tx.ex(), &rows).await?;
            tx.commit().await?;
            total += rows.len();
            rows.clear();
        }
    }
    println!("built {total} timeline entries (threshold {threshold}) in {:.1?}", started.elapsed());
    Ok(total)
}

async fn timelines_len(state: &AppState, user: Id) -> anyhow::Result<i64> {
    Ok(feed::timeline_len(state, user).await?)
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Sequential reads of page `depth` for each of `users` (earlier pages walked untimed).
async fn read_pages(state: &AppState, users: &[Id], depth: usize) -> anyhow::Result<(Histogram<u64>, Duration)> {
    let mut h = hist();
    let mut busy = Duration::ZERO;
    for u in users {
        let mut cursor = None;
        for page in 1..=depth {
            let q = PageQuery { cursor: cursor.clone(), limit: Some(PAGE) };
            let t = Instant::now();
            let p = feed::home(state, *u, &q).await?;
            let took = t.elapsed();
            if page == depth {
                h.record(took.as_micros() as u64)?;
                busy += took;
            }
            cursor = p.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
    }
    Ok((h, busy))
}

/// Page-1 reads by `tasks` concurrent readers: reads per second of wall-clock time.
async fn concurrent_reads(state: &AppState, users: &[Id], tasks: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut handles = Vec::new();
    for chunk in users.chunks(users.len().div_ceil(tasks)) {
        let (state, chunk) = (state.clone(), chunk.to_vec());
        handles.push(tokio::spawn(async move {
            for u in chunk {
                feed::home(&state, u, &PageQuery { cursor: None, limit: Some(PAGE) }).await.expect("feed read");
            }
        }));
    }
    for h in handles {
        h.await?;
    }
    Ok(users.len() as f64 / started.elapsed().as_secs_f64())
}

async fn report_reads(label: &str, state: &AppState, sample: &[Id], deep: &[Id]) -> anyhow::Result<()> {
    read_pages(state, &sample[..50], 1).await?; // warm-up
    let (h1, busy1) = read_pages(state, sample, 1).await?;
    let (h10, busy10) = read_pages(state, deep, 10).await?;
    let conc = concurrent_reads(state, sample, 4).await?;
    println!("{label}");
    println!(
        "  page 1 : {:>5} reads  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  {:>6.0} reads/s sequential, {:>6.0} reads/s with 4 readers",
        h1.len(),
        ms(h1.value_at_quantile(0.5)),
        ms(h1.value_at_quantile(0.99)),
        ms(h1.max()),
        h1.len() as f64 / busy1.as_secs_f64(),
        conc
    );
    println!(
        "  page 10: {:>5} reads  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  {:>6.0} reads/s sequential",
        h10.len(),
        ms(h10.value_at_quantile(0.5)),
        ms(h10.value_at_quantile(0.99)),
        ms(h10.max()),
        h10.len() as f64 / busy10.as_secs_f64()
    );
    Ok(())
}

async fn instance(dir: &std::path::Path, threshold: i64) -> anyhow::Result<Chorus> {
    let mut cfg = Config { listen: "127.0.0.1:0".parse()?, data_dir: dir.to_path_buf(), ..Config::default() };
    cfg.feed.fanout_read_threshold = threshold;
    cfg.database_max_connections = 8;
    Chorus::build(cfg).await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!("machine: {} cores, {cpu}; SQLite (WAL) in a temp dir", std::thread::available_parallelism()?.get());
    let dir = tempfile::tempdir()?;
    let app = instance(dir.path(), 10_000).await?;
    let state = app.state().clone();
    let max_len = state.config.feed.timeline_max_len as usize;
    let d = seed(&state).await?;
    build_timelines(&state, &d, 10_000, max_len).await?;

    let mut rng = StdRng::seed_from_u64(11);
    let active: Vec<Id> = (0..USERS).filter(|u| !d.following[*u].is_empty()).map(|u| d.users[u]).collect();
    let sample: Vec<Id> = (0..1_000).map(|_| active[rng.gen_range(0..active.len())]).collect();
    let deep: Vec<Id> = (0..200).map(|_| active[rng.gen_range(0..active.len())]).collect();
    report_reads("home feed, everyone fanned out on write (threshold 10,000 followers):", &state, &sample, &deep)
        .await?;

    // Fan-out of one post by the account with 5,000 followers.
    let celebrity = d.users[0];
    let mut fan = hist();
    for i in 0..7 {
        let id = state.ids.next();
        let mut tx = state.store.begin().await?;
        let caption = format!("celebrity post {i}");
        posts::insert(
            tx.ex(),
            &NewPost {
                id,
                author_id: celebrity,
                caption: &caption,
                has_image: false,
                has_video: false,
                now: Timestamp::now(),
            },
        )
        .await?;
        tx.commit().await?;
        let t = Instant::now();
        feed::run_fan_out(state.clone(), FanOutPost { post: id, author: celebrity, change: PostChange::Created })
            .await?;
        fan.record(t.elapsed().as_micros() as u64)?;
    }
    let mut c = state.store.conn().await?;
    let sample_follower = graph::active_follower_ids(c.ex(), celebrity).await?[0];
    drop(c);
    assert!(timelines_len(&state, sample_follower).await? > 0, "fanned out");
    println!(
        "fan-out of one post to {} followers (5,000 timeline rows + 5,001 durable feed events, one transaction): \
         p50 {:.1} ms, max {:.1} ms over {} posts",
        d.followers[0],
        ms(fan.value_at_quantile(0.5)),
        ms(fan.max()),
        fan.len()
    );

    // Where the time goes: each half alone, rolled back.
    let post = state.ids.next();
    let mut tx = state.store.begin().await?;
    let row = NewPost {
        id: post,
        author_id: celebrity,
        caption: "breakdown",
        has_image: false,
        has_video: false,
        now: Timestamp::now(),
    };
    posts::insert(tx.ex(), &row).await?;
    tx.commit().await?;
    let mut c = state.store.conn().await?;
    let fans = graph::active_follower_ids(c.ex(), celebrity).await?;
    let prow = posts::get(c.ex(), post).await?.expect("just inserted");
    drop(c);
    let view = chorus::services::posts::views(&state, None, vec![prow]).await?.remove(0);
    let topics: Vec<Topic> = std::iter::once(celebrity).chain(fans.iter().copied()).map(Topic::Feed).collect();
    let mut tx = state.store.begin().await?;
    let t = Instant::now();
    timelines::push(tx.ex(), post, celebrity, &fans).await?;
    let rows_t = t.elapsed();
    let t = Instant::now();
    let sixteenth: Vec<Id> = fans.iter().copied().step_by(16).collect();
    timelines::trim(tx.ex(), &sixteenth, max_len as i64).await?;
    let trim_t = t.elapsed();
    let t = Instant::now();
    let mut events = EventBatch::new();
    events.add(&mut tx, &topics, EventName::PostCreated, &view).await?;
    let events_t = t.elapsed();
    let t = Instant::now();
    state.commit(tx, events).await?;
    let commit_t = t.elapsed();
    println!(
        "  of which: {} timeline rows {rows_t:.1?}, trimming {} timelines {trim_t:.1?}, {} durable events {events_t:.1?}, commit {commit_t:.1?}",
        fans.len(),
        sixteenth.len(),
        topics.len()
    );

    // The hybrid's read side: accounts above 1,000 followers merged at read time.
    let big = d.followers.iter().filter(|f| **f > 1_000).count();
    let hybrid = instance(dir.path(), 1_000).await?;
    let hstate = hybrid.state().clone();
    build_timelines(&hstate, &d, 1_000, max_len).await?;
    report_reads(
        &format!("home feed, {big} accounts above 1,000 followers merged at read time (threshold 1,000):"),
        &hstate,
        &sample,
        &deep,
    )
    .await?;
    hstate.store.close().await;
    state.store.close().await;
    Ok(())
}
