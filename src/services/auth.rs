//! Account use cases: register, login, token refresh with rotation and reuse detection,
//! logout, password change and reset.
//!
//! Sessions: each login opens a *family* of refresh tokens. Every refresh marks the
//! presented token used and issues the next one in the family. Presenting a used token again
//! means it was stolen (or a client is badly broken): the whole family is revoked, and so
//! are its access tokens (`sid:` revocation) and sockets.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::tokens::{hash_token, random_code, random_token};
use crate::auth::{AuthUser, password};
use crate::domain::user::{Email, NewPassword, Username};
use crate::domain::{Id, Timestamp, now_ms};
use crate::error::{AppError, AppResult, Validator};
use crate::events::{EventBatch, EventName, Topic};
use crate::jobs;
pub use crate::jobs::payloads::SendEmail;
use crate::mail::Mail;
use crate::ratelimit::Bucket;
use crate::realtime::close::CloseCode;
use crate::services::users::{self, Me};
use crate::state::AppState;
use crate::store::{Tx, sessions, tokens, users as user_store, verifications};

/// `POST /auth/register` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3–30 characters of `[a-z0-9_.]` (upper case is folded).
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// At least 8 characters.
    pub password: String,
    /// Shown name (defaults to the username), at most 50 characters.
    pub display_name: Option<String>,
}

/// `POST /auth/login` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Username or e-mail.
    pub login: String,
    /// Password.
    pub password: String,
}

/// Register, login and refresh answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthResponse {
    /// The account.
    pub user: Me,
    /// Bearer token for `Authorization`.
    pub access_token: String,
    /// Opaque token for `POST /auth/refresh`; single use.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// Runs a [`SendEmail`] job.
pub async fn run_send_email(state: AppState, job: SendEmail) -> anyhow::Result<()> {
    state.mailer.send(&job.0).await
}

/// Where a login comes from: listed with its session.
#[derive(Clone, Debug, Default)]
pub struct Client {
    /// The client address.
    pub ip: String,
    /// Its `User-Agent`, shortened.
    pub device: String,
}

/// Opens a new session (refresh family) for `client`, or continues `family`, inside `tx`.
async fn issue_tokens(
    state: &AppState,
    tx: &mut Tx,
    user: Id,
    family: Result<Id, &Client>,
) -> AppResult<(String, String)> {
    let now = Timestamp::now();
    let family = match family {
        Ok(f) => {
            sessions::touch(tx.ex(), f, now).await?;
            f
        }
        Err(client) => {
            let f = state.ids.next();
            sessions::insert(tx.ex(), f, user, &client.device, &client.ip, now).await?;
            f
        }
    };
    let refresh = random_token(32);
    let expires = Timestamp(now.0 + state.auth.refresh_ttl * 1000);
    tokens::insert_refresh(tx.ex(), state.ids.next(), user, family, &hash_token(&refresh), now, expires).await?;
    let (access, _) = state.auth.issue_access(user, family)?;
    Ok((access, refresh))
}

async fn respond(state: &AppState, user: Id, access: String, refresh: String) -> AppResult<AuthResponse> {
    let me = users::me(state, user).await?;
    Ok(AuthResponse { user: me, access_token: access, refresh_token: refresh, expires_in: state.auth.access_ttl })
}

/// Registers an account and logs it in.
pub async fn register(state: &AppState, client: &Client, req: RegisterRequest) -> AppResult<AuthResponse> {
    state.limits.check(Bucket::AuthIp, &format!("register:{}", client.ip)).await?;
    let mut v = Validator::new();
    let username = v.check("username", Username::parse(&req.username));
    let email = v.check("email", Email::parse(&req.email));
    let pw = v.check("password", NewPassword::parse(&req.password));
    let display = match &req.display_name {
        Some(d) => v.check("display_name", crate::domain::user::bounded_text(d, 50)),
        None => None,
    };
    v.finish()?;
    let (username, email, pw) = (username.expect("checked"), email.expect("checked"), pw.expect("checked"));
    let display = display.filter(|d| !d.is_empty()).unwrap_or_else(|| username.to_string());

    let hash = password::hash(pw.expose().to_string()).await?;
    let id = state.ids.next();
    let mut tx = state.store.begin().await?;
    let new = user_store::NewUser {
        id,
        username: username.as_str(),
        email: email.as_str(),
        password_hash: &hash,
        display_name: &display,
        now: Timestamp::now(),
    };
    // Uniqueness is the database's to decide (no check-then-insert race); its violation
    // becomes a field error.
    if let Err(e) = user_store::insert(tx.ex(), &new).await {
        return Err(if e.is_conflict_on("username") {
            AppError::conflict_field("username", "is already taken")
        } else if e.is_conflict_on("email") {
            AppError::conflict_field("email", "is already registered")
        } else {
            e.into()
        });
    }
    let (access, refresh) = issue_tokens(state, &mut tx, id, Err(client)).await?;
    // Where writing needs a verified address, a code goes out by itself (otherwise
    // `POST /auth/email/resend` sends one on request).
    if state.config.verification_required() {
        send_verification(state, &mut tx, id, username.as_str(), email.as_str()).await?;
    }
    state.commit(tx, EventBatch::new()).await?;
    respond(state, id, access, refresh).await
}

/// Logs in by username or e-mail.
pub async fn login(state: &AppState, client: &Client, req: LoginRequest) -> AppResult<AuthResponse> {
    let login = req.login.trim().to_ascii_lowercase();
    state.limits.check(Bucket::AuthIp, &format!("login:{}", client.ip)).await?;
    if login.is_empty() || req.password.is_empty() {
        let mut v = Validator::new();
        if login.is_empty() {
            v.fail("login", "is required");
        }
        if req.password.is_empty() {
            v.fail("password", "is required");
        }
        v.finish()?;
    }
    if login.len() > 254 || req.password.len() > 1024 {
        return Err(AppError::Unauthorized("invalid login or password"));
    }
    state.limits.check(Bucket::AuthAccount, &format!("login:{login}")).await?;
    let mut c = state.store.conn().await?;
    let user = user_store::get_by_login(c.ex(), &login).await?;
    drop(c);
    // Verify against a dummy hash when the account does not exist: same work, same time.
    let phc = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| password::dummy_hash().to_string());
    let ok = password::verify(req.password, phc).await?;
    let Some(user) = user.filter(|_| ok) else {
        return Err(AppError::Unauthorized("invalid login or password"));
    };
    // A deleted account no longer exists for logging in.
    if user.deleted_at.is_some() {
        return Err(AppError::Unauthorized("invalid login or password"));
    }
    // Told only to whoever knows the password.
    if user.suspended_at.is_some() {
        return Err(AppError::AccountSuspended);
    }
    let mut tx = state.store.begin().await?;
    // Again inside the transaction that issues the tokens: a suspension or deletion that
    // landed during the password check must not leave a session behind.
    standing_for_tokens(&mut tx, user.id).await?;
    let (access, refresh) = issue_tokens(state, &mut tx, user.id, Err(client)).await?;
    state.commit(tx, EventBatch::new()).await?;
    respond(state, user.id, access, refresh).await
}

/// Exchanges a refresh token for a new pair (rotation). A reused token revokes its family.
pub async fn refresh(state: &AppState, refresh_token: &str) -> AppResult<AuthResponse> {
    if refresh_token.is_empty() || refresh_token.len() > 256 {
        return Err(AppError::Unauthorized("invalid refresh token"));
    }
    let hash = hash_token(refresh_token);
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    match tokens::use_refresh(tx.ex(), &hash, now).await? {
        Some((user, family)) => {
            standing_for_tokens(&mut tx, user).await?;
            let (access, refresh) = issue_tokens(state, &mut tx, user, Ok(family)).await?;
            state.commit(tx, EventBatch::new()).await?;
            respond(state, user, access, refresh).await
        }
        None => {
            // Unknown, expired, revoked — or used before: then it is a replay.
            if let Some((user, family)) = tokens::family_of(tx.ex(), &hash).await? {
                tracing::warn!(%user, %family, "refresh token reuse detected; revoking the session");
                tokens::revoke_family(tx.ex(), family, now).await?;
                revoke_sessions(state, &mut tx, &[family]).await?;
                let mut events = EventBatch::new();
                close_sockets(&mut events, user, Some(family), None, CloseCode::TOKEN_REVOKED);
                state.commit(tx, events).await?;
            }
            Err(AppError::Unauthorized("invalid refresh token"))
        }
    }
}

/// Refuses new tokens to a suspended (`403 account_suspended`) or deleted (`401`) account,
/// read inside the transaction that would issue them.
async fn standing_for_tokens(tx: &mut Tx, user: Id) -> AppResult<()> {
    let u = user_store::get(tx.ex(), user).await?.ok_or(AppError::Unauthorized("invalid login or password"))?;
    if u.deleted_at.is_some() {
        return Err(AppError::Unauthorized("invalid login or password"));
    }
    if u.suspended_at.is_some() {
        return Err(AppError::AccountSuspended);
    }
    Ok(())
}

/// Revokes the access tokens of whole sessions (`sid:` keys) until they would expire, marks
/// the sessions ended and removes the push subscriptions they registered.
async fn revoke_sessions(state: &AppState, tx: &mut Tx, families: &[Id]) -> AppResult<()> {
    for f in families {
        state.revocations.revoke(tx, &format!("sid:{f}"), state.auth.access_ttl).await?;
    }
    sessions::end(tx.ex(), families, Timestamp::now()).await?;
    // A device's push subscription belongs to the session that registered it.
    crate::store::push::delete_for_sessions(tx.ex(), families).await?;
    Ok(())
}

/// Ends every session of `user` inside `tx` (refresh families, access tokens) and adds the
/// event that closes their sockets on every instance with `code`: a suspension, an account
/// deletion.
pub async fn end_every_session(
    state: &AppState,
    tx: &mut Tx,
    events: &mut EventBatch,
    user: Id,
    code: CloseCode,
) -> AppResult<()> {
    let now = Timestamp::now();
    let all = tokens::revoke_user_families(tx.ex(), user, None, now).await?;
    revoke_sessions(state, tx, &all).await?;
    // Sessions whose refresh tokens were all used up still have access tokens out.
    let listed: Vec<Id> = sessions::live(tx.ex(), user, now, i64::MAX / 4).await?.into_iter().map(|s| s.id).collect();
    revoke_sessions(state, tx, &listed).await?;
    close_sockets(events, user, None, None, code);
    Ok(())
}

/// Tells every instance to close the user's sockets, with `code`: of one session, of all
/// but one, or all.
fn close_sockets(events: &mut EventBatch, user: Id, session: Option<Id>, except: Option<Id>, code: CloseCode) {
    #[derive(Serialize)]
    struct Revoked {
        session: Option<Id>,
        except: Option<Id>,
        code: u16,
    }
    events.ephemeral(&[Topic::Control(user)], EventName::SessionRevoked, &Revoked { session, except, code: code.0 });
}

/// Ends the caller's session: its refresh family, this access token (at once) and its sockets.
pub async fn logout(state: &AppState, user: &AuthUser) -> AppResult<()> {
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    tokens::revoke_family(tx.ex(), user.sid, now).await?;
    let remaining = (user.claims.exp - now_ms() / 1000).max(1);
    state.revocations.revoke(&mut tx, &format!("jti:{}", user.claims.jti), remaining).await?;
    revoke_sessions(state, &mut tx, &[user.sid]).await?;
    let mut events = EventBatch::new();
    close_sockets(&mut events, user.id, Some(user.sid), None, CloseCode::TOKEN_REVOKED);
    state.commit(tx, events).await?;
    Ok(())
}

/// `PUT /auth/password` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    /// The current password.
    pub current_password: String,
    /// The new password (at least 8 characters).
    pub new_password: String,
}

/// Changes the password and ends every other session of the account and every reset token.
/// Limited per address and per account before any argon2 work: each attempt costs a verify
/// and a hash (~19 MiB and tens of milliseconds of the blocking pool each).
pub async fn change_password(state: &AppState, ip: &str, user: &AuthUser, req: ChangePasswordRequest) -> AppResult<()> {
    state.limits.check(Bucket::AuthIp, &format!("password:{ip}")).await?;
    state.limits.check(Bucket::AuthAccount, &format!("password:{}", user.id)).await?;
    let mut v = Validator::new();
    let new = v.check("new_password", NewPassword::parse(&req.new_password));
    if req.current_password.is_empty() {
        v.fail("current_password", "is required");
    }
    v.finish()?;
    let new = new.expect("checked");
    let mut c = state.store.conn().await?;
    let row = user_store::get(c.ex(), user.id).await?.ok_or(AppError::NotFound)?;
    drop(c);
    if !password::verify(req.current_password, row.password_hash).await? {
        return Err(AppError::field("current_password", "is incorrect"));
    }
    let hash = password::hash(new.expose().to_string()).await?;
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    user_store::set_password(tx.ex(), user.id, &hash, now).await?;
    tokens::end_resets(tx.ex(), user.id, now).await?;
    let others = tokens::revoke_user_families(tx.ex(), user.id, Some(user.sid), now).await?;
    revoke_sessions(state, &mut tx, &others).await?;
    let mut events = EventBatch::new();
    close_sockets(&mut events, user.id, None, Some(user.sid), CloseCode::TOKEN_REVOKED);
    state.commit(tx, events).await?;
    Ok(())
}

/// `POST /auth/password/forgot` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ForgotPasswordRequest {
    /// The account's e-mail address.
    pub email: String,
}

/// Sends a reset link if the address belongs to an account. Answers the same either way.
pub async fn forgot_password(state: &AppState, ip: &str, req: ForgotPasswordRequest) -> AppResult<()> {
    state.limits.check(Bucket::AuthIp, &format!("forgot:{ip}")).await?;
    let email = Email::parse(&req.email).map_err(|m| AppError::field("email", m))?;
    state.limits.check(Bucket::AuthAccount, &format!("forgot:{}", email.as_str())).await?;
    let mut c = state.store.conn().await?;
    let Some(user) = user_store::get_by_email(c.ex(), email.as_str()).await? else {
        return Ok(());
    };
    drop(c);
    let token = random_token(32);
    let now = Timestamp::now();
    let expires = Timestamp(now.0 + state.config.reset_token_ttl_secs as i64 * 1000);
    let link = format!("{}/reset-password?token={token}", state.config.public_url());
    let mail = Mail {
        to: user.email.clone(),
        subject: "Reset your Chorus password".into(),
        text: format!(
            "Hello {},\n\nSomeone (hopefully you) asked to reset the password of your Chorus account.\n\
             The token below works once, within {} minutes.\n\nYour reset token:\n{token}\n\nOr open: {link}\n\n\
             If you did not ask for this, ignore this message; your password is unchanged.\n",
            user.username,
            state.config.reset_token_ttl_secs / 60
        ),
    };
    let mut tx = state.store.begin().await?;
    tokens::insert_reset(tx.ex(), state.ids.next(), user.id, &hash_token(&token), now, expires).await?;
    jobs::enqueue(&mut tx, &state.ids, state.config.jobs.max_attempts, &SendEmail(mail)).await?;
    state.commit(tx, EventBatch::new()).await?;
    Ok(())
}

/// `POST /auth/password/reset` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetPasswordRequest {
    /// The token from the e-mail.
    pub token: String,
    /// The new password (at least 8 characters).
    pub new_password: String,
}

/// Sets a new password with a reset token (single use) and ends every session and every
/// other reset token of the account. The token is checked (and the caller's address
/// limited) before the new password is hashed, so bad tokens cost no argon2 work.
pub async fn reset_password(state: &AppState, ip: &str, req: ResetPasswordRequest) -> AppResult<()> {
    state.limits.check(Bucket::AuthIp, &format!("reset:{ip}")).await?;
    let new = NewPassword::parse(&req.new_password).map_err(|m| AppError::field("new_password", m))?;
    let invalid = || AppError::field("token", "is invalid or expired");
    if req.token.is_empty() || req.token.len() > 256 {
        return Err(invalid());
    }
    let token_hash = hash_token(&req.token);
    let mut c = state.store.conn().await?;
    let owner = tokens::reset_owner(c.ex(), &token_hash, Timestamp::now()).await?.ok_or_else(invalid)?;
    drop(c);
    state.limits.check(Bucket::AuthAccount, &format!("reset:{owner}")).await?;
    let hash = password::hash(new.expose().to_string()).await?;
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    // Consumed here, atomically: a concurrent reset with the same token finds it used.
    let Some(user) = tokens::use_reset(tx.ex(), &token_hash, now).await? else {
        return Err(invalid());
    };
    user_store::set_password(tx.ex(), user, &hash, now).await?;
    tokens::end_resets(tx.ex(), user, now).await?;
    let all = tokens::revoke_user_families(tx.ex(), user, None, now).await?;
    revoke_sessions(state, &mut tx, &all).await?;
    let mut events = EventBatch::new();
    close_sockets(&mut events, user, None, None, CloseCode::TOKEN_REVOKED);
    state.commit(tx, events).await?;
    Ok(())
}

/// A login session as `GET /auth/sessions` lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Session id (for `DELETE /auth/sessions/{id}`).
    pub id: Id,
    /// The `User-Agent` it logged in with.
    pub device: String,
    /// The address it logged in from.
    pub ip: String,
    /// Logged in.
    pub created_at: Timestamp,
    /// Last login or token refresh.
    pub last_used_at: Timestamp,
    /// This is the session of the token asking.
    pub current: bool,
}

/// The caller's open sessions, latest used first.
pub async fn list_sessions(state: &AppState, user: &AuthUser) -> AppResult<Vec<SessionView>> {
    let mut c = state.store.conn().await?;
    let rows = sessions::live(c.ex(), user.id, Timestamp::now(), state.auth.refresh_ttl * 1000).await?;
    Ok(rows
        .into_iter()
        .map(|s| SessionView {
            current: s.id == user.sid,
            id: s.id,
            device: s.device,
            ip: s.ip,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
        })
        .collect())
}

/// Ends one of the caller's sessions (the current one included): its refresh tokens, its
/// access tokens and its sockets on every instance. `404` for anyone else's.
pub async fn end_session(state: &AppState, user: &AuthUser, id: Id) -> AppResult<()> {
    let mut tx = state.store.begin().await?;
    sessions::get_open(tx.ex(), user.id, id).await?.ok_or(AppError::NotFound)?;
    tokens::revoke_family(tx.ex(), id, Timestamp::now()).await?;
    revoke_sessions(state, &mut tx, &[id]).await?;
    let mut events = EventBatch::new();
    close_sockets(&mut events, user.id, Some(id), None, CloseCode::TOKEN_REVOKED);
    state.commit(tx, events).await?;
    Ok(())
}

// ---- e-mail verification --------------------------------------------------------------------

/// Sends `email` a fresh 6-digit code and a link (ending any earlier ones), in `tx`.
async fn send_verification(state: &AppState, tx: &mut Tx, user: Id, username: &str, email: &str) -> AppResult<()> {
    let code = random_code();
    let token = random_token(32);
    let now = Timestamp::now();
    let ttl = state.config.auth.verification_ttl();
    let expires = Timestamp(now.0 + ttl as i64 * 1000);
    let (code_hash, token_hash) = (state.auth.hash_code(user, &code), hash_token(&token));
    verifications::insert(tx.ex(), state.ids.next(), user, email, &code_hash, &token_hash, now, expires).await?;
    let link = format!("{}/verify-email?token={token}", state.config.public_url());
    let mail = Mail {
        to: email.to_string(),
        subject: format!("Your Chorus code: {code}"),
        text: format!(
            "Hello {username},\n\nYour code to verify this e-mail address on Chorus is:\n\n    {code}\n\n\
             Or open: {link}\n\nBoth work once, within {} minutes. If you did not sign up, ignore this message.\n",
            ttl.div_ceil(60)
        ),
    };
    jobs::enqueue(tx, &state.ids, state.config.jobs.max_attempts, &SendEmail(mail)).await?;
    Ok(())
}

/// `POST /auth/email/verify` body: the code (signed in) or the link's token (from anywhere).
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyEmailRequest {
    /// The 6-digit code from the e-mail (needs the account's bearer token).
    #[serde(default)]
    pub code: Option<String>,
    /// The token of the e-mail's link.
    #[serde(default)]
    pub token: Option<String>,
}

/// Verifies the account's e-mail address with its code or link: single use, until it
/// expires, five wrong codes at most. `422` for anything else.
pub async fn verify_email(state: &AppState, ip: &str, me: Option<&AuthUser>, req: VerifyEmailRequest) -> AppResult<()> {
    state.limits.check(Bucket::AuthIp, &format!("verify:{ip}")).await?;
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    let (user, email) = match (&req.token, &req.code, me) {
        (Some(t), _, _) => {
            let invalid = || AppError::field("token", "is invalid or expired");
            if t.is_empty() || t.len() > 256 {
                return Err(invalid());
            }
            verifications::use_token(tx.ex(), &hash_token(t), now).await?.ok_or_else(invalid)?
        }
        (None, Some(code), Some(me)) => {
            let code = code.trim();
            if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(AppError::field("code", "is 6 digits"));
            }
            match verifications::use_code(tx.ex(), me.id, &state.auth.hash_code(me.id, code), now).await? {
                Some(email) => (me.id, email),
                None => {
                    // The wrong attempt counts (committed), the answer is the same.
                    tx.commit().await?;
                    return Err(AppError::field("code", "is invalid or expired"));
                }
            }
        }
        (None, Some(_), None) => return Err(AppError::Unauthorized("a code needs the account's access token")),
        (None, None, _) => return Err(AppError::field("code", "send the code or the link's token")),
    };
    // The address may have changed since the mail went out: then this verifies nothing.
    if !user_store::set_email_verified(tx.ex(), user, &email, now).await? {
        return Err(AppError::field("code", "was sent to an address the account no longer has"));
    }
    state.commit(tx, EventBatch::new()).await?;
    Ok(())
}

/// Sends a new code and link to the account's address (limited per account). `409` when it
/// is verified already.
pub async fn resend_verification(state: &AppState, me: &AuthUser) -> AppResult<()> {
    state.limits.check(Bucket::AuthAccount, &format!("verify:{}", me.id)).await?;
    let mut tx = state.store.begin().await?;
    let u = user_store::get(tx.ex(), me.id).await?.ok_or(AppError::NotFound)?;
    if u.email_verified_at.is_some() {
        return Err(AppError::conflict("the e-mail address is verified already"));
    }
    send_verification(state, &mut tx, u.id, &u.username, &u.email).await?;
    state.commit(tx, EventBatch::new()).await?;
    Ok(())
}

/// `PUT /auth/email` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeEmailRequest {
    /// The new address.
    pub email: String,
    /// The current password.
    pub password: String,
}

/// Changes the account's e-mail address (with the password): the new address is unverified
/// and gets a code and link.
pub async fn change_email(state: &AppState, ip: &str, me: &AuthUser, req: ChangeEmailRequest) -> AppResult<Me> {
    state.limits.check(Bucket::AuthIp, &format!("email:{ip}")).await?;
    state.limits.check(Bucket::AuthAccount, &format!("email:{}", me.id)).await?;
    let email = Email::parse(&req.email).map_err(|m| AppError::field("email", m))?;
    let mut c = state.store.conn().await?;
    let u = user_store::get(c.ex(), me.id).await?.ok_or(AppError::NotFound)?;
    drop(c);
    if req.password.is_empty() || !password::verify(req.password, u.password_hash.clone()).await? {
        return Err(AppError::field("password", "is incorrect"));
    }
    if u.email == email.as_str() {
        return Err(AppError::field("email", "is the current address"));
    }
    let mut tx = state.store.begin().await?;
    if let Err(e) = user_store::set_email(tx.ex(), me.id, email.as_str(), Timestamp::now()).await {
        return Err(if e.is_conflict_on("email") {
            AppError::conflict_field("email", "is already registered")
        } else {
            e.into()
        });
    }
    // Where writing needs a verified address, a code goes out by itself (otherwise
    // `POST /auth/email/resend` sends one on request).
    if state.config.verification_required() {
        send_verification(state, &mut tx, u.id, &u.username, email.as_str()).await?;
    }
    state.commit(tx, EventBatch::new()).await?;
    users::me(state, me.id).await
}
