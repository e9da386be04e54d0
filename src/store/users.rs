//! Users, their social links and notification settings.

use sqlx::FromRow;

use super::{Ex, StoreResult, fetch_limit};
use crate::domain::user::{NotificationKind, Role, SocialNetwork, WhoCanMessage};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// A `users` row.
#[derive(Clone, Debug, FromRow)]
pub struct UserRow {
    /// Id.
    pub id: Id,
    /// Lower-case username.
    pub username: String,
    /// Lower-case e-mail.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Display name.
    pub display_name: String,
    /// Bio.
    pub bio: String,
    /// Website.
    pub website: Option<String>,
    /// Avatar media id.
    pub avatar_media_id: Option<Id>,
    /// Only approved followers see posts.
    pub is_private: bool,
    /// Followers.
    pub follower_count: i64,
    /// Following.
    pub following_count: i64,
    /// Posts.
    pub post_count: i64,
    /// Created.
    pub created_at: Timestamp,
    /// Last profile change.
    pub updated_at: Timestamp,
    /// `user`, `moderator` or `admin` (see [`crate::domain::user::Role`]).
    pub role: String,
    /// Set while the account is suspended.
    pub suspended_at: Option<Timestamp>,
    /// `everyone`, `following`, `nobody`, or `None` for the server's default.
    pub who_can_message: Option<String>,
    /// When the current e-mail address was verified.
    pub email_verified_at: Option<Timestamp>,
    /// When the owner deleted the account (erased, or being erased).
    pub deleted_at: Option<Timestamp>,
    /// Whether pushed chat messages quote the message (else only name the sender).
    pub push_previews: bool,
}

impl UserRow {
    /// Who may message the account, `default` when it has not chosen.
    pub fn who_can_message(&self, default: WhoCanMessage) -> WhoCanMessage {
        self.who_can_message.as_deref().and_then(WhoCanMessage::from_key).unwrap_or(default)
    }

    /// The account's role (an unknown stored value reads as a plain user).
    pub fn role(&self) -> Role {
        Role::from_key(&self.role).unwrap_or(Role::User)
    }
}

const COLS: &str = "id, username, email, password_hash, display_name, bio, website, avatar_media_id, \
                    is_private, follower_count, following_count, post_count, created_at, updated_at, \
                    role, suspended_at, who_can_message, email_verified_at, deleted_at, push_previews";

/// Values of a new user.
pub struct NewUser<'a> {
    /// Id.
    pub id: Id,
    /// Normalised username.
    pub username: &'a str,
    /// Normalised e-mail.
    pub email: &'a str,
    /// Password hash.
    pub password_hash: &'a str,
    /// Display name.
    pub display_name: &'a str,
    /// Creation time.
    pub now: Timestamp,
}

/// Inserts a user. A taken username or e-mail is a [`super::StoreError::Conflict`]
/// mentioning `username` or `email`.
pub async fn insert(ex: Ex<'_>, u: &NewUser<'_>) -> StoreResult<()> {
    let sql = "INSERT INTO users (id, username, email, password_hash, display_name, display_name_lower, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $7)";
    exec!(ex, c => sqlx::query(sql)
        .bind(u.id).bind(u.username).bind(u.email).bind(u.password_hash)
        .bind(u.display_name).bind(u.display_name.to_lowercase()).bind(u.now)
        .execute(c).await)?;
    Ok(())
}

/// A user by id.
pub async fn get(ex: Ex<'_>, id: Id) -> StoreResult<Option<UserRow>> {
    let sql = format!("SELECT {COLS} FROM users WHERE id = $1");
    Ok(run!(ex, c => sqlx::query_as::<_, UserRow>(&sql).bind(id).fetch_optional(c).await)?)
}

/// A user by (normalised) username.
pub async fn get_by_username(ex: Ex<'_>, username: &str) -> StoreResult<Option<UserRow>> {
    let sql = format!("SELECT {COLS} FROM users WHERE username = $1");
    Ok(run!(ex, c => sqlx::query_as::<_, UserRow>(&sql).bind(username).fetch_optional(c).await)?)
}

/// A user by e-mail.
pub async fn get_by_email(ex: Ex<'_>, email: &str) -> StoreResult<Option<UserRow>> {
    let sql = format!("SELECT {COLS} FROM users WHERE email = $1");
    Ok(run!(ex, c => sqlx::query_as::<_, UserRow>(&sql).bind(email).fetch_optional(c).await)?)
}

/// Login lookup: username or e-mail, in one query (both columns are stored lower-case).
pub async fn get_by_login(ex: Ex<'_>, login: &str) -> StoreResult<Option<UserRow>> {
    let sql = format!("SELECT {COLS} FROM users WHERE username = $1 OR email = $1 LIMIT 1");
    Ok(run!(ex, c => sqlx::query_as::<_, UserRow>(&sql).bind(login).fetch_optional(c).await)?)
}

/// Several users by id, in no particular order.
pub async fn get_many(ex: Ex<'_>, ids: &[Id]) -> StoreResult<Vec<UserRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = ids.iter().map(|i| i.0.to_string()).collect::<Vec<_>>().join(",");
    // Ids are integers we produced; inlining them is safe and keeps one SQL text for both
    // backends (PostgreSQL's `= ANY($1)` has no SQLite equivalent).
    let sql = format!("SELECT {COLS} FROM users WHERE id IN ({list})");
    Ok(run!(ex, c => sqlx::query_as::<_, UserRow>(&sql).fetch_all(c).await)?)
}

/// Profile fields to change; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct ProfilePatch {
    /// New display name.
    pub display_name: Option<String>,
    /// New bio.
    pub bio: Option<String>,
    /// New website (`Some(None)` clears it).
    pub website: Option<Option<String>>,
    /// New privacy flag.
    pub is_private: Option<bool>,
}

/// Applies a profile patch.
pub async fn update_profile(ex: Ex<'_>, id: Id, p: &ProfilePatch, now: Timestamp) -> StoreResult<()> {
    // COALESCE keeps unchanged columns; the website needs a flag because NULL is a value.
    let sql = "UPDATE users SET \
                 display_name = COALESCE($2, display_name), \
                 display_name_lower = COALESCE($3, display_name_lower), \
                 bio = COALESCE($4, bio), \
                 website = CASE WHEN $5 THEN $6 ELSE website END, \
                 is_private = COALESCE($7, is_private), \
                 updated_at = $8 \
               WHERE id = $1";
    let (set_site, site) = match &p.website {
        Some(v) => (true, v.clone()),
        None => (false, None),
    };
    let r = exec!(ex, c => sqlx::query(sql)
        .bind(id)
        .bind(p.display_name.as_deref())
        .bind(p.display_name.as_ref().map(|d| d.to_lowercase()))
        .bind(p.bio.as_deref())
        .bind(set_site)
        .bind(site)
        .bind(p.is_private)
        .bind(now)
        .execute(c).await)?;
    if r == 0 {
        return Err(super::StoreError::NotFound);
    }
    Ok(())
}

/// Replaces the avatar; returns the previous avatar media id (to be deleted by a job).
pub async fn set_avatar(ex: Ex<'_>, id: Id, media: Option<Id>, now: Timestamp) -> StoreResult<Option<Id>> {
    // Read the old value under a row lock (PostgreSQL); SQLite write transactions are
    // exclusive already and do not know `FOR UPDATE`.
    let lock = if ex.backend() == super::Backend::Postgres { " FOR UPDATE" } else { "" };
    let select = format!("SELECT avatar_media_id FROM users WHERE id = $1{lock}");
    let update = "UPDATE users SET avatar_media_id = $2, updated_at = $3 WHERE id = $1";
    run!(ex, c => async {
        let old: Option<Option<Id>> = sqlx::query_scalar(&select).bind(id).fetch_optional(&mut *c).await?;
        let old = old.ok_or(super::StoreError::NotFound)?;
        sqlx::query(update).bind(id).bind(media).bind(now).execute(&mut *c).await?;
        Ok(old)
    }.await)
}

/// Sets a new password hash.
pub async fn set_password(ex: Ex<'_>, id: Id, hash: &str, now: Timestamp) -> StoreResult<()> {
    let sql = "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1";
    exec!(ex, c => sqlx::query(sql).bind(id).bind(hash).bind(now).execute(c).await)?;
    Ok(())
}

/// All users, newest first, after the cursor id.
pub async fn list(ex: Ex<'_>, before: Option<Id>, limit: u32) -> StoreResult<Vec<UserRow>> {
    let sql = format!("SELECT {COLS} FROM users WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2");
    let before = before.map(|i| i.0);
    Ok(run!(ex, c => sqlx::query_as::<_, UserRow>(&sql).bind(before).bind(fetch_limit(limit)).fetch_all(c).await)?)
}

/// Users whose username or display name starts with `prefix` (already lower-case), by
/// username, after the cursor username. Both columns are indexed; the prefix becomes a
/// range `[prefix, prefix + U+10FFFF)` so the indexes are used on both backends.
pub async fn search_prefix(ex: Ex<'_>, prefix: &str, after: Option<&str>, limit: u32) -> StoreResult<Vec<UserRow>> {
    let upper = format!("{prefix}\u{10FFFF}");
    let sql = format!(
        "SELECT {COLS} FROM users \
         WHERE ((username >= $1 AND username < $2) OR (display_name_lower >= $1 AND display_name_lower < $2)) \
           AND ($3 IS NULL OR username > $3) \
         ORDER BY username LIMIT $4"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, UserRow>(&sql)
        .bind(prefix).bind(&upper).bind(after).bind(fetch_limit(limit))
        .fetch_all(c).await)?)
}

/// Social links of a user.
pub async fn social_links(ex: Ex<'_>, id: Id) -> StoreResult<Vec<(SocialNetwork, String)>> {
    let rows: Vec<(String, String)> = run!(ex, c => sqlx::query_as(
        "SELECT network, url FROM user_social_links WHERE user_id = $1 ORDER BY network")
        .bind(id).fetch_all(c).await)?;
    Ok(rows.into_iter().filter_map(|(n, u)| SocialNetwork::from_key(&n).map(|n| (n, u))).collect())
}

/// Sets (`Some`) or removes (`None`) one social link.
pub async fn set_social_link(ex: Ex<'_>, id: Id, network: SocialNetwork, url: Option<&str>) -> StoreResult<()> {
    match url {
        Some(url) => {
            let sql = "INSERT INTO user_social_links (user_id, network, url) VALUES ($1, $2, $3) \
                       ON CONFLICT (user_id, network) DO UPDATE SET url = excluded.url";
            exec!(ex, c => sqlx::query(sql).bind(id).bind(network.key()).bind(url).execute(c).await)?;
        }
        None => {
            let sql = "DELETE FROM user_social_links WHERE user_id = $1 AND network = $2";
            exec!(ex, c => sqlx::query(sql).bind(id).bind(network.key()).execute(c).await)?;
        }
    }
    Ok(())
}

/// One notification preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotificationPref {
    /// Kind.
    pub kind: NotificationKind,
    /// Shown in the app (and live on the socket).
    pub in_app: bool,
    /// Sent by e-mail.
    pub email: bool,
    /// Pushed to the account's registered devices while it has no socket open.
    pub push: bool,
}

/// Every notification preference of a user; kinds never set get their defaults.
pub async fn notification_prefs(ex: Ex<'_>, id: Id) -> StoreResult<Vec<NotificationPref>> {
    let rows: Vec<(String, bool, bool, bool)> = run!(ex, c => sqlx::query_as(
        "SELECT kind, in_app, email, push FROM user_notification_settings WHERE user_id = $1")
        .bind(id).fetch_all(c).await)?;
    Ok(NotificationKind::ALL
        .into_iter()
        .map(|kind| {
            rows.iter()
                .find(|(k, ..)| k == kind.key())
                .map(|&(_, in_app, email, push)| NotificationPref { kind, in_app, email, push })
                .unwrap_or(NotificationPref { kind, in_app: true, email: kind.email_by_default(), push: true })
        })
        .collect())
}

/// Stores one notification preference.
pub async fn set_notification_pref(ex: Ex<'_>, id: Id, p: NotificationPref) -> StoreResult<()> {
    let sql = "INSERT INTO user_notification_settings (user_id, kind, in_app, email, push) VALUES ($1, $2, $3, $4, $5) \
               ON CONFLICT (user_id, kind) DO UPDATE SET in_app = excluded.in_app, email = excluded.email, \
               push = excluded.push";
    exec!(ex, c => sqlx::query(sql).bind(id).bind(p.kind.key()).bind(p.in_app).bind(p.email).bind(p.push)
        .execute(c).await)?;
    Ok(())
}

/// Sets whether pushed chat messages quote the message.
pub async fn set_push_previews(ex: Ex<'_>, id: Id, on: bool) -> StoreResult<()> {
    exec!(ex, c => sqlx::query("UPDATE users SET push_previews = $2 WHERE id = $1").bind(id).bind(on)
        .execute(c).await)?;
    Ok(())
}

/// Number of users (seeding, metrics).
pub async fn count(ex: Ex<'_>) -> StoreResult<i64> {
    Ok(run!(ex, c => sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(c).await)?)
}

/// Random accounts unrelated to `me` (suggestions): not `me`, not followed or requested by
/// `me`, no block either way, none of `exclude`.
pub async fn random_unrelated(ex: Ex<'_>, me: Id, exclude: &[Id], limit: u32) -> StoreResult<Vec<UserRow>> {
    let skip =
        if exclude.is_empty() { String::new() } else { format!(" AND id NOT IN ({})", super::posts::in_list(exclude)) };
    let sql = format!(
        "SELECT {COLS} FROM users WHERE id <> $1{skip} \
           AND id NOT IN (SELECT followee_id FROM follows WHERE follower_id = $1) \
           AND id NOT IN (SELECT blocked_id FROM blocks WHERE blocker_id = $1) \
           AND id NOT IN (SELECT blocker_id FROM blocks WHERE blocked_id = $1) \
         ORDER BY RANDOM() LIMIT $2"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, UserRow>(&sql).bind(me).bind(limit as i64).fetch_all(c).await)?)
}

/// Users by (normalised) username; unknown names are simply absent.
pub async fn get_by_usernames(ex: Ex<'_>, names: &[String]) -> StoreResult<Vec<UserRow>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let params = (1..=names.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(",");
    let sql = format!("SELECT {COLS} FROM users WHERE username IN ({params})");
    run!(ex, c => {
        let mut q = sqlx::query_as::<_, UserRow>(&sql);
        for n in names {
            q = q.bind(n);
        }
        Ok(q.fetch_all(c).await?)
    })
}

/// `author`'s follower count and the range of posts fan-out skipped (see
/// `migrations/*/0006_unfanned.sql`).
pub async fn fan_out_state(ex: Ex<'_>, author: Id) -> StoreResult<Option<(i64, Option<(Id, Id)>)>> {
    let sql = "SELECT follower_count, unfanned_since, unfanned_until FROM users WHERE id = $1";
    let row: Option<(i64, Option<Id>, Option<Id>)> =
        run!(ex, c => sqlx::query_as(sql).bind(author).fetch_optional(c).await)?;
    Ok(row.map(|(n, since, until)| (n, since.zip(until))))
}

/// Records that fan-out skipped `post` (the range widens to cover it).
pub async fn mark_unfanned(ex: Ex<'_>, author: Id, post: Id) -> StoreResult<()> {
    let sql = "UPDATE users SET \
                 unfanned_since = CASE WHEN unfanned_since IS NULL OR unfanned_since > $2 THEN $2 ELSE unfanned_since END, \
                 unfanned_until = CASE WHEN unfanned_until IS NULL OR unfanned_until < $2 THEN $2 ELSE unfanned_until END \
               WHERE id = $1";
    exec!(ex, c => sqlx::query(sql).bind(author).bind(post).execute(c).await)?;
    Ok(())
}

/// After the posts up to `until` were copied: clears the range, or — when fan-out skipped a
/// newer post meanwhile — moves its start past `until`. Returns the author's follower count
/// when such a newer range remains to be copied.
pub async fn finish_unfanned(ex: Ex<'_>, author: Id, until: Id) -> StoreResult<Option<i64>> {
    let sql = "UPDATE users SET \
                 unfanned_since = CASE WHEN unfanned_until = $2 THEN NULL ELSE $3 END, \
                 unfanned_until = CASE WHEN unfanned_until = $2 THEN NULL ELSE unfanned_until END \
               WHERE id = $1 AND unfanned_until IS NOT NULL \
               RETURNING follower_count, unfanned_since IS NOT NULL";
    let row: Option<(i64, bool)> = run!(ex, c => sqlx::query_as(sql)
        .bind(author)
        .bind(until)
        .bind(Id(until.0 + 1))
        .fetch_optional(c)
        .await)?;
    Ok(row.filter(|r| r.1).map(|r| r.0))
}

/// Sets an account's role; `false` when there is no such account.
pub async fn set_role(ex: Ex<'_>, id: Id, role: Role) -> StoreResult<bool> {
    let sql = "UPDATE users SET role = $2 WHERE id = $1";
    Ok(exec!(ex, c => sqlx::query(sql).bind(id).bind(role.key()).execute(c).await)? == 1)
}

/// Suspends (`Some(at)`) or unsuspends (`None`) an account; `false` when nothing changed.
pub async fn set_suspended(ex: Ex<'_>, id: Id, at: Option<Timestamp>) -> StoreResult<bool> {
    let sql = if at.is_some() {
        "UPDATE users SET suspended_at = $2 WHERE id = $1 AND suspended_at IS NULL"
    } else {
        "UPDATE users SET suspended_at = $2 WHERE id = $1 AND suspended_at IS NOT NULL"
    };
    Ok(exec!(ex, c => sqlx::query(sql).bind(id).bind(at).execute(c).await)? == 1)
}

/// Of `ids`, the accounts hidden from everyone: suspended, or deleted by their owner.
pub async fn suspended_among(ex: Ex<'_>, ids: &[Id]) -> StoreResult<Vec<Id>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id FROM users WHERE (suspended_at IS NOT NULL OR deleted_at IS NOT NULL) AND id IN ({})",
        super::posts::in_list(ids)
    );
    Ok(run!(ex, c => sqlx::query_scalar(&sql).fetch_all(c).await)?)
}

/// Every hidden account: suspended or deleted (a small set, by partial indexes).
pub async fn suspended_ids(ex: Ex<'_>) -> StoreResult<Vec<Id>> {
    let sql = "SELECT id FROM users WHERE suspended_at IS NOT NULL OR deleted_at IS NOT NULL";
    Ok(run!(ex, c => sqlx::query_scalar(sql).fetch_all(c).await)?)
}

/// The accounts that moderate (moderators and admins), not suspended.
pub async fn moderator_ids(ex: Ex<'_>) -> StoreResult<Vec<Id>> {
    let sql = "SELECT id FROM users WHERE role <> 'user' AND suspended_at IS NULL ORDER BY id";
    Ok(run!(ex, c => sqlx::query_scalar(sql).fetch_all(c).await)?)
}

/// Sets who may message the account.
pub async fn set_who_can_message(ex: Ex<'_>, id: Id, who: WhoCanMessage) -> StoreResult<()> {
    let sql = "UPDATE users SET who_can_message = $2 WHERE id = $1";
    exec!(ex, c => sqlx::query(sql).bind(id).bind(who.key()).execute(c).await)?;
    Ok(())
}

/// Marks `email` verified for the account, if it is still the account's address.
pub async fn set_email_verified(ex: Ex<'_>, id: Id, email: &str, now: Timestamp) -> StoreResult<bool> {
    let sql = "UPDATE users SET email_verified_at = $3 WHERE id = $1 AND email = $2";
    Ok(exec!(ex, c => sqlx::query(sql).bind(id).bind(email).bind(now).execute(c).await)? == 1)
}

/// Changes the account's e-mail address (unverified until its code is used). A taken
/// address is a conflict mentioning `email`.
pub async fn set_email(ex: Ex<'_>, id: Id, email: &str, now: Timestamp) -> StoreResult<()> {
    let sql = "UPDATE users SET email = $2, email_verified_at = NULL, updated_at = $3 WHERE id = $1";
    exec!(ex, c => sqlx::query(sql).bind(id).bind(email).bind(now).execute(c).await)?;
    Ok(())
}

/// Marks the account deleted by its owner; `false` when it already is.
pub async fn mark_deleted(ex: Ex<'_>, id: Id, now: Timestamp) -> StoreResult<bool> {
    let sql = "UPDATE users SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL";
    Ok(exec!(ex, c => sqlx::query(sql).bind(id).bind(now).execute(c).await)? == 1)
}

/// Turns an erased account's row into a tombstone: no profile, no address, no password,
/// the username free again (the row stays: messages name it as their sender).
pub async fn anonymize(ex: Ex<'_>, id: Id, now: Timestamp) -> StoreResult<()> {
    let sql = "UPDATE users SET username = $2, email = $3, password_hash = '!', display_name = 'Deleted account', \
               display_name_lower = 'deleted account', bio = '', website = NULL, avatar_media_id = NULL, \
               is_private = FALSE, follower_count = 0, following_count = 0, post_count = 0, role = 'user', \
               who_can_message = 'nobody', email_verified_at = NULL, updated_at = $4 WHERE id = $1";
    // `-` is not allowed in a username and there is no `@`: no one can register these
    // names first and so make the erasure fail.
    exec!(ex, c => sqlx::query(sql).bind(id).bind(format!("deleted-{id}")).bind(format!("deleted-{id}"))
        .bind(now).execute(c).await)?;
    Ok(())
}
