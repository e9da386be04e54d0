//! `chorus seed`: realistic sample data, idempotent (every row has a deterministic natural
//! key — `user0001`… — and is skipped when it exists).
//!
//! Social data: follows (a few popular accounts everyone follows, plus a ring of neighbours),
//! 1–3 posts per user with hashtags and a mention, and on each *new* post two comments, a
//! reply and three reactions. A user's posts are only created up to their deterministic
//! count, and comments and reactions only on posts created in the same run, so a second
//! run adds nothing. New posts enqueue the same durable fan-out job as the API, so home
//! feeds fill as soon as a server runs (table or Redis timelines alike).
//!
//! Then, so that the web client shows a network that looks lived in, the seed runs a
//! server of its own (on a random local port, with its job worker) and goes through the
//! services as a client would: a generated picture for each account's avatar and for each
//! seeded post without media — uploaded, processed and stored by the real media pipeline —
//! and a direct conversation with a short history between neighbours. Each step is skipped
//! where it was done before (an avatar set, a post with media, a conversation with
//! messages), so the seed stays idempotent.

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
    media_and_chat(config, n).await
}

const PALETTE: [[u8; 3]; 8] = [
    [236, 112, 99],
    [93, 173, 226],
    [88, 214, 141],
    [245, 176, 65],
    [175, 122, 197],
    [72, 201, 176],
    [240, 98, 146],
    [133, 146, 158],
];

/// A deterministic picture: a diagonal gradient between two palette colours with a few
/// lighter discs, as a PNG. Integer arithmetic only: the seed draws hundreds of them.
fn picture(seed: usize, w: u32, h: u32) -> Vec<u8> {
    let (a, b) = (PALETTE[seed % PALETTE.len()], PALETTE[(seed * 3 + 1) % PALETTE.len()]);
    let discs: Vec<(i64, i64, i64)> = (0..3)
        .map(|k| {
            let x = ((seed * 37 + k * 101) % 100) as i64 * w as i64 / 100;
            let y = ((seed * 53 + k * 67) % 100) as i64 * h as i64 / 100;
            let r = w.min(h) as i64 * (12 + 8 * k as i64) / 100;
            (x, y, r * r)
        })
        .collect();
    let span = w + h;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let t = x + y;
        let mut px = [0u8; 3];
        for c in 0..3 {
            px[c] = ((a[c] as u32 * (span - t) + b[c] as u32 * t) / span) as u8;
        }
        let inside = discs.iter().filter(|&&(cx, cy, r2)| (x as i64 - cx).pow(2) + (y as i64 - cy).pow(2) < r2).count();
        px.map(|v| v + ((255 - v) as usize * inside / 5) as u8).into()
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encoding a PNG in memory");
    out.into_inner()
}

const CHAT: [&str; 5] = [
    "Hey! Loved your last post",
    "Thanks! It was a great day out",
    "We should go together next time",
    "Deal. Saturday?",
    "Saturday it is 🎉",
];

/// Avatars, post pictures and conversations, through a running server's services.
async fn media_and_chat(mut config: Config, n: u32) -> anyhow::Result<()> {
    use crate::services::{chat, media};
    config.listen = "127.0.0.1:0".parse()?;
    config.public_url = None;
    // The seed writes much faster than a person; the write limits are for people.
    config.rate_limit.writes = crate::config::WriteLimits::all(u32::MAX, u32::MAX);
    // Seeded conversations would e-mail their example.com accounts.
    config.smtp_url = None;
    let app = crate::app::Chorus::build(config).await?;
    let state = app.state().clone();
    let stop = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());

    let mut people = Vec::new();
    {
        let mut c = state.store.conn().await?;
        for i in 1..=n {
            if let Some(u) = users::get_by_username(c.ex(), &format!("user{i:04}")).await? {
                people.push(u);
            }
        }
    }
    // Upload everything first and let the worker process it all, then attach: one wait,
    // not one per picture.
    let mut avatars = Vec::new();
    let mut pictures = Vec::new();
    for (i, u) in people.iter().enumerate() {
        if u.avatar_media_id.is_none() {
            avatars.push((u.id, upload(&state, u.id, picture(i, 320, 320)).await?));
        }
        let mut c = state.store.conn().await?;
        let mine = posts::ids_by_authors(c.ex(), &[u.id], None, 10).await?;
        let pictured: Vec<Id> =
            crate::store::media::for_posts(c.ex(), &mine).await?.iter().map(|r| r.post_id).collect();
        drop(c);
        for (k, post) in mine.into_iter().enumerate().filter(|(_, p)| !pictured.contains(p)) {
            pictures.push((u.id, post, upload(&state, u.id, picture(i * 7 + k + 3, 800, 800)).await?));
        }
    }
    for &(_, id) in &avatars {
        ready(&state, id).await?;
    }
    for &(_, _, id) in &pictures {
        ready(&state, id).await?;
    }
    for &(user, id) in &avatars {
        media::set_avatar(&state, user, media::SetAvatarRequest { media_id: Some(Some(id)) }).await?;
    }
    for &(user, post, id) in &pictures {
        let mut tx = state.store.begin().await?;
        let (has_image, has_video) = media::attach_to_post(&state, &mut tx, user, post, &[id]).await?;
        posts::set_media_flags(tx.ex(), post, has_image, has_video).await?;
        tx.commit().await?;
    }
    // A direct conversation of each account with the previous one, who follows it (so no
    // message request is needed).
    let mut conversations = 0;
    for pair in people.windows(2) {
        let (other, u) = (&pair[0], &pair[1]);
        let req = chat::NewConversation::Direct { user_id: other.id.to_string() };
        let (conv, _) = chat::create(&state, u.id, req).await?;
        if conv.last_message.is_none() {
            for (k, body) in CHAT.iter().enumerate() {
                let from = if k % 2 == 0 { u.id } else { other.id };
                let msg = chat::SendMessage { body: Some(body.to_string()), ..Default::default() };
                chat::send(&state, from, conv.id, msg).await?;
            }
            conversations += 1;
        }
    }
    let (avatars, pictures) = (avatars.len(), pictures.len());
    tracing::info!(avatars, pictures, conversations, "media and conversations seeded");
    stop.cancel();
    server.await??;
    Ok(())
}

/// Uploads `png` as `owner`; the job worker processes it.
async fn upload(state: &crate::state::AppState, owner: Id, png: Vec<u8>) -> anyhow::Result<Id> {
    let chunks = futures_util::stream::iter([Ok(bytes::Bytes::from(png))]);
    Ok(crate::services::media::upload(state, owner, chunks).await?.id)
}

/// Waits for the job worker (running in this process) to process an upload: the row says
/// when it is done.
async fn ready(state: &crate::state::AppState, id: Id) -> anyhow::Result<()> {
    for _ in 0..3000 {
        let mut c = state.store.conn().await?;
        let m = crate::store::media::get(c.ex(), id).await?;
        drop(c);
        match m.map(|m| m.status) {
            Some(s) if s == "ready" => return Ok(()),
            Some(s) if s == "failed" => anyhow::bail!("a seeded picture failed to process"),
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    anyhow::bail!("a seeded picture was not processed within a minute")
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
