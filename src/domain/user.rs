//! User-facing values that validate themselves: a value of these types is always valid.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A username: 3–30 characters of `[a-z0-9_.]`, stored lower-cased so that uniqueness is
/// case-insensitive (`Alice` and `alice` are the same account).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Normalises (trim, lower-case) and validates.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let s = raw.trim().to_ascii_lowercase();
        if s.chars().count() < 3 {
            return Err("must be at least 3 characters");
        }
        if s.chars().count() > 30 {
            return Err("must be at most 30 characters");
        }
        if !s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.') {
            return Err("may contain only letters, digits, '_' and '.'");
        }
        Ok(Self(s))
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address, lower-cased. Validation is structural (one `@`, a dotted domain, no
/// spaces, sane lengths), which is what can be checked without sending mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Normalises (trim, lower-case) and validates.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let s = raw.trim().to_ascii_lowercase();
        if s.len() > 254 {
            return Err("is too long");
        }
        let Some((local, domain)) = s.split_once('@') else {
            return Err("is not a valid e-mail address");
        };
        let ok_local = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let ok_domain = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if ok_local && ok_domain { Ok(Self(s)) } else { Err("is not a valid e-mail address") }
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: 8–256 characters (the upper bound keeps hashing cost bounded).
#[derive(Clone)]
pub struct NewPassword(String);

impl NewPassword {
    /// Validates length only; any characters are allowed.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let n = raw.chars().count();
        if n < 8 {
            Err("must be at least 8 characters")
        } else if n > 256 {
            Err("must be at most 256 characters")
        } else {
            Ok(Self(raw.to_string()))
        }
    }

    /// The password text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

/// Trims and bounds a free-text field; `max` counts characters, not bytes.
pub fn bounded_text(raw: &str, max: usize) -> Result<String, String> {
    let s = raw.trim();
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("must not contain control characters".into());
    }
    Ok(s.to_string())
}

/// An `http(s)` URL of at most 2,000 characters.
pub fn web_url(raw: &str) -> Result<String, &'static str> {
    let s = raw.trim();
    if s.len() > 2000 {
        return Err("is too long");
    }
    match url::Url::parse(s) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host_str().is_some() => Ok(u.to_string()),
        _ => Err("must be an http(s) URL"),
    }
}

/// The social networks a profile can link to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SocialNetwork {
    /// twitter.com / x.com
    Twitter,
    /// instagram.com
    Instagram,
    /// facebook.com
    Facebook,
    /// youtube.com
    Youtube,
    /// tiktok.com
    Tiktok,
    /// linkedin.com
    Linkedin,
    /// github.com
    Github,
}

impl SocialNetwork {
    /// Every network, in display order.
    pub const ALL: [SocialNetwork; 7] =
        [Self::Twitter, Self::Instagram, Self::Facebook, Self::Youtube, Self::Tiktok, Self::Linkedin, Self::Github];

    /// Stored key.
    pub fn key(self) -> &'static str {
        match self {
            Self::Twitter => "twitter",
            Self::Instagram => "instagram",
            Self::Facebook => "facebook",
            Self::Youtube => "youtube",
            Self::Tiktok => "tiktok",
            Self::Linkedin => "linkedin",
            Self::Github => "github",
        }
    }

    /// Parses a stored key.
    pub fn from_key(k: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.key() == k)
    }
}

/// What an account may do beyond using Chorus: moderators handle reports (remove content,
/// suspend accounts); admins also grant and revoke roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everyone.
    User,
    /// Handles reports.
    Moderator,
    /// Handles reports and roles.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::User, Role::Moderator, Role::Admin];

    /// Stored key.
    pub fn key(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Moderator => "moderator",
            Self::Admin => "admin",
        }
    }

    /// Parses a stored key (or a CLI argument).
    pub fn from_key(k: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.key() == k)
    }

    /// Whether the role handles reports.
    pub fn moderates(self) -> bool {
        matches!(self, Self::Moderator | Self::Admin)
    }
}

/// Who may start a conversation with an account (or add it to a group) without asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WhoCanMessage {
    /// Anyone not blocked.
    Everyone,
    /// Accounts the account follows; anyone else sends a message request.
    Following,
    /// Nobody: every conversation starts as a request.
    Nobody,
}

impl WhoCanMessage {
    /// Stored key.
    pub fn key(self) -> &'static str {
        match self {
            Self::Everyone => "everyone",
            Self::Following => "following",
            Self::Nobody => "nobody",
        }
    }

    /// Parses a stored key.
    pub fn from_key(k: &str) -> Option<Self> {
        [Self::Everyone, Self::Following, Self::Nobody].into_iter().find(|w| w.key() == k)
    }
}

/// The kinds of notification a user can tune.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// Someone followed me.
    Follow,
    /// Someone asked to follow my private account.
    FollowRequest,
    /// My follow request was approved.
    FollowApproved,
    /// Someone reacted to my post or comment.
    Reaction,
    /// Someone commented on my post.
    Comment,
    /// Someone replied to my comment.
    Reply,
    /// Someone mentioned me in a post or comment.
    Mention,
    /// A chat message arrived while I had no open socket.
    Message,
    /// (Moderators) a new report arrived.
    Report,
    /// A report I made was resolved.
    ReportResolved,
    /// My data export is ready to download.
    ExportReady,
}

impl NotificationKind {
    /// Every kind.
    pub const ALL: [NotificationKind; 11] = [
        Self::Follow,
        Self::FollowRequest,
        Self::FollowApproved,
        Self::Reaction,
        Self::Comment,
        Self::Reply,
        Self::Mention,
        Self::Message,
        Self::Report,
        Self::ReportResolved,
        Self::ExportReady,
    ];

    /// Stored key.
    pub fn key(self) -> &'static str {
        match self {
            Self::Follow => "follow",
            Self::FollowRequest => "follow_request",
            Self::FollowApproved => "follow_approved",
            Self::Reaction => "reaction",
            Self::Comment => "comment",
            Self::Reply => "reply",
            Self::Mention => "mention",
            Self::Message => "message",
            Self::Report => "report",
            Self::ReportResolved => "report_resolved",
            Self::ExportReady => "export_ready",
        }
    }

    /// Parses a stored key.
    pub fn from_key(k: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.key() == k)
    }

    /// Whether e-mail is on for this kind when the user has not chosen.
    pub fn email_by_default(self) -> bool {
        matches!(self, Self::FollowRequest | Self::Message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_normalise_and_validate() {
        assert_eq!(Username::parse("  Alice_01 ").unwrap().as_str(), "alice_01");
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(31)).is_err());
        assert!(Username::parse("bad-name").is_err());
        assert!(Username::parse("émile").is_err());
        assert!(Username::parse("a.b_c").is_ok());
    }

    #[test]
    fn emails_validate_structurally() {
        assert_eq!(Email::parse(" Bob@Example.COM ").unwrap().as_str(), "bob@example.com");
        for bad in
            ["", "bob", "bob@", "@x.com", "bob@localhost", "bob@@x.com", "b ob@x.com", "bob@-x.com", ".bob@x.com"]
        {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_have_bounds() {
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse("long enough").is_ok());
        assert!(NewPassword::parse(&"x".repeat(257)).is_err());
        assert_eq!(format!("{:?}", NewPassword::parse("secret123").unwrap()), "NewPassword(***)");
    }

    #[test]
    fn urls_must_be_http() {
        assert!(web_url("https://example.com/me").is_ok());
        assert!(web_url("javascript:alert(1)").is_err());
        assert!(web_url("ftp://x.com").is_err());
    }
}

/// State of a follow, as `follows.status` stores it (`active` | `pending`) and the API
/// shows it. Decoded by sqlx from the column, so no code compares status strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FollowStatus {
    /// Following (approved, or the account is public).
    Active,
    /// Requested; the private account has not decided yet (grants nothing).
    Pending,
}

impl FollowStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Pending => "pending",
        }
    }
}

impl<DB: sqlx::Database> sqlx::Type<DB> for FollowStatus
where
    str: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <str as sqlx::Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <str as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for FollowStatus
where
    &'r str: sqlx::Decode<'r, DB>,
{
    fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        match <&'r str as sqlx::Decode<'r, DB>>::decode(value)? {
            "active" => Ok(Self::Active),
            "pending" => Ok(Self::Pending),
            other => Err(format!("unknown follow status {other:?}").into()),
        }
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for FollowStatus
where
    &'static str: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&'static str as sqlx::Encode<'q, DB>>::encode(self.as_str(), buf)
    }
}
