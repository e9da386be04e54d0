//! `chorus seed`: realistic sample data, idempotent (every row has a deterministic natural
//! key — `user0001`… — and is skipped when it exists).
//!
//! Social data: follows (a few popular accounts everyone follows, plus a ring of neighbours),
//! 1–3 posts per user with hashtags and a mention, and on each *new* post two comments, a
//! reply and three reactions. A user's posts are only created up to their deterministic
//! count, and comments and reactions only on posts created in the same run, so a second
//! run adds nothing. New posts enqueue the same durable fan-out job as the API, so home
//! feeds fill as soon as a server runs (table or Redis timelines alike).

use crate::config::Config;
use crate::domain::user::SocialNetwork;
use crate::domain::{Id, IdGen, Timestamp};
use crate::services::feed::{FanOutPost, PostChange};
use crate::services::posts::parse_hashtags;
use crate::store::comments::{self, NewComment};
use crate::store::posts::{self, NewPost, SocialCounts};
use crate::store::reactions::{self, Target};
use crate::store::{Conn, Store, graph, users};

const FIRST: [&str; 24] = [
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Donald",
    "Hedy",
    "Tim",
    "Katherine",
    "John",
    "Sophie",
    "Guido",
    "Joan",
    "Bjarne",
    "Shafi",
    "Niklaus",
    "Annie",
    "Leslie",
];
const LAST: [&str; 16] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Knuth",
    "Lamarr",
    "Berners-Lee",
    "Johnson",
    "McCarthy",
];
const BIOS: [&str; 8] = [
    "Coffee, code and climbing.",
    "Photographer. Night owl. 📷",
    "Building things on the internet.",
    "Plants, books and long walks.",
    "Runner 🏃 · Cook · Tinkerer",
    "Here for the cat pictures.",
    "Sketching the city one street at a time.",
    "",
];

/// The password of every seeded account (documented in README).
pub const SEED_PASSWORD: &str = "password123";

const CAPTIONS: [&str; 8] = [
    "Morning light over the harbour #sunrise #photography",
    "Finally finished this sketch #art #citylife",
    "Best ramen in town, no contest #food #ramen",
    "Trail run before work 🏃 #running #outdoors",
    "New plant friend joined the shelf #plants #home",
    "Weekend project: a tiny weather station #diy #electronics",
    "Reading list for the autumn #books",
    "Coffee and code, as usual #coffee #coding",
];
const COMMENTS: [&str; 6] = [
    "Love this!",
    "Where was this taken?",
    "So good 😍",
    "Great shot",
    "Need to try this",
    "Inspiring, thanks for sharing",
];
const KINDS: [&str; 6] = ["like", "love", "support", "celebrate", "insightful", "funny"];

/// Seeds `n` users with follows, posts, comments and reactions.
pub async fn run(config: Config, n: u32) -> anyhow::Result<()> {
    let store = Store::connect(&config.effective_database_url(), 4).await?;
    store.migrate().await?;
    let ids = IdGen::new(config.node_id.unwrap_or(1000));
    let created = seed_users(&store, &ids, n).await?;
    tracing::info!(requested = n, created, "users seeded (password: {SEED_PASSWORD})");
    let posts = seed_social(&store, &ids, n, config.jobs.max_attempts).await?;
    let mut c = store.conn().await?;
    let totals = counts(&mut c).await?;
    drop(c);
    tracing::info!(new_posts = posts, ?totals, "social data seeded");
    store.close().await;
    Ok(())
}

/// Row counts of the seeded tables.
pub async fn counts(c: &mut Conn) -> anyhow::Result<SocialCounts> {
    Ok(posts::social_counts(c.ex()).await?)
}

/// Follows, posts, comments and reactions among `user0001`…`user{n}`; returns how many posts
/// were created.
pub async fn seed_social(store: &Store, ids: &IdGen, n: u32, max_attempts: i32) -> anyhow::Result<u32> {
    let mut tx = store.begin().await?;
    let mut people: Vec<Id> = Vec::new();
    for i in 1..=n {
        let u = users::get_by_username(tx.ex(), &format!("user{i:04}"))
            .await?
            .ok_or_else(|| anyhow::anyhow!("user{i:04} missing"))?;
        people.push(u.id);
    }
    if people.len() < 2 {
        tx.commit().await?;
        return Ok(0);
    }
    let len = people.len();
    let now = Timestamp::now();

    // A power-law-ish graph: the first three accounts are followed by everyone, the others by
    // their ring neighbours.
    let mut pairs = Vec::new();
    for (i, &me) in people.iter().enumerate() {
        for j in [0, 1, 2, (i + 1) % len, (i + 2) % len, (i + 5) % len] {
            if people[j] != me {
                pairs.push((me, people[j]));
            }
        }
    }
    graph::insert_follows_bulk(tx.ex(), &pairs, now).await?;
    graph::recount_follows(tx.ex()).await?;

    let mut created = 0;
    for (i, &author) in people.iter().enumerate() {
        let want = 1 + (i % 3) as i64;
        let have = posts::count_by(tx.ex(), author).await?;
        for k in have..want {
            let id = ids.next();
            let mention = format!("user{:04}", (i + 1) % len + 1);
            let caption = format!("{} with @{mention}", CAPTIONS[(i + k as usize) % CAPTIONS.len()]);
            posts::insert(
                tx.ex(),
                &NewPost { id, author_id: author, caption: &caption, has_image: false, has_video: false, now },
            )
            .await?;
            posts::set_hashtags(tx.ex(), id, &parse_hashtags(&caption)).await?;
            if let Some(m) = users::get_by_username(tx.ex(), &mention).await? {
                posts::set_mentions(tx.ex(), id, &[m.id]).await?;
            }
            // Two comments from neighbours, a reply from the author, three reactions.
            let mut first = None;
            for c in 0..2 {
                let cid = ids.next();
                let commenter = people[(i + 3 + c) % len];
                let body = COMMENTS[(i + c) % COMMENTS.len()];
                let new = NewComment { id: cid, post_id: id, author_id: commenter, parent_id: None, body, now };
                comments::insert(tx.ex(), &new).await?;
                first.get_or_insert(cid);
            }
            if let Some(parent) = first {
                let new = NewComment {
                    id: ids.next(),
                    post_id: id,
                    author_id: author,
                    parent_id: Some(parent),
                    body: "Thank you!",
                    now,
                };
                comments::insert(tx.ex(), &new).await?;
                comments::add_reply_count(tx.ex(), parent, 1).await?;
            }
            posts::add_comment_count(tx.ex(), id, 3).await?;
            for r in 0..3 {
                let who = people[(i + 7 + r) % len];
                let kind = KINDS[(i + r) % KINDS.len()];
                if who != author && reactions::insert(tx.ex(), Target::Post, id, who, kind, now).await? {
                    reactions::apply_counts(tx.ex(), Target::Post, id, &[(kind, 1)]).await?;
                }
            }
            let job = FanOutPost { post: id, author, change: PostChange::Created };
            crate::jobs::enqueue(&mut tx, ids, max_attempts, &job).await?;
            created += 1;
        }
    }
    tx.commit().await?;
    Ok(created)
}

/// Creates `user0001`…`user{n}` where missing; returns how many were created.
pub async fn seed_users(store: &Store, ids: &IdGen, n: u32) -> anyhow::Result<u32> {
    // One hash for every account: hashing 10,000 passwords would take minutes.
    let hash = crate::auth::password::hash(SEED_PASSWORD.to_string()).await?;
    let mut created = 0;
    let mut tx = store.begin().await?;
    for i in 1..=n {
        let username = format!("user{i:04}");
        if users::get_by_username(tx.ex(), &username).await?.is_some() {
            continue;
        }
        let idx = i as usize;
        let display = format!("{} {}", FIRST[idx % FIRST.len()], LAST[(idx / FIRST.len() + idx) % LAST.len()]);
        let id = ids.next();
        let now = Timestamp::now();
        let email = format!("{username}@example.com");
        users::insert(
            tx.ex(),
            &users::NewUser {
                id,
                username: &username,
                email: &email,
                password_hash: &hash,
                display_name: &display,
                now,
            },
        )
        .await?;
        // Sample accounts can write at once, whether or not the server requires verification.
        users::set_email_verified(tx.ex(), id, &email, now).await?;
        let bio = BIOS[idx % BIOS.len()];
        let patch = users::ProfilePatch {
            bio: Some(bio.to_string()),
            is_private: Some(idx.is_multiple_of(10)),
            website: Some((idx.is_multiple_of(3)).then(|| format!("https://{username}.example.com/"))),
            ..Default::default()
        };
        users::update_profile(tx.ex(), id, &patch, now).await?;
        if idx.is_multiple_of(2) {
            users::set_social_link(
                tx.ex(),
                id,
                SocialNetwork::Instagram,
                Some(&format!("https://instagram.com/{username}")),
            )
            .await?;
        }
        created += 1;
    }
    tx.commit().await?;
    Ok(created)
}
