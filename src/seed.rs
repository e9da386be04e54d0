//! `chorus seed`: realistic sample data, idempotent (every row has a deterministic natural
//! key — `user0001`… — and is skipped when it exists).

use crate::config::Config;
use crate::domain::Timestamp;
use crate::domain::user::SocialNetwork;
use crate::store::{Store, users};

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

/// Seeds `n` users (and, as later areas land, their posts, follows and conversations).
pub async fn run(config: Config, n: u32) -> anyhow::Result<()> {
    let store = Store::connect(&config.effective_database_url(), 4).await?;
    store.migrate().await?;
    let ids = crate::domain::IdGen::new(config.node_id.unwrap_or(1000));
    let created = seed_users(&store, &ids, n).await?;
    tracing::info!(requested = n, created, "users seeded (password: {SEED_PASSWORD})");
    store.close().await;
    Ok(())
}

/// Creates `user0001`…`user{n}` where missing; returns how many were created.
pub async fn seed_users(store: &Store, ids: &crate::domain::IdGen, n: u32) -> anyhow::Result<u32> {
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
