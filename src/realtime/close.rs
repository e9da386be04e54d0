//! WebSocket close codes (`protocol/PROTOCOL.md#close-codes`).
//!
//! 4000–4499: "reconnect (elsewhere) and resume" — the client did nothing wrong.
//! 4500–4999: final — reconnecting with the same credentials or behaviour will fail again.

/// A close code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// The server is shutting down or draining; reconnect (to another instance) and resume.
    pub const SHUTDOWN: CloseCode = CloseCode(4000);
    /// The client did not read fast enough; its queue filled. Reconnect and resume.
    pub const SLOW_CONSUMER: CloseCode = CloseCode(4001);
    /// No frame (not even a pong) within two heartbeat intervals.
    pub const HEARTBEAT_TIMEOUT: CloseCode = CloseCode(4002);
    /// This instance is at its connection limit; reconnect later or elsewhere.
    pub const TOO_MANY_CONNECTIONS: CloseCode = CloseCode(4003);
    /// The access token expired without a refreshed one being sent. Refresh, then reconnect.
    pub const TOKEN_EXPIRED: CloseCode = CloseCode(4004);
    /// No valid token (missing or malformed, or none sent within the auth timeout).
    pub const UNAUTHORIZED: CloseCode = CloseCode(4500);
    /// The token or its session was revoked (logout, password change). Log in again.
    pub const TOKEN_REVOKED: CloseCode = CloseCode(4501);
    /// The client broke the protocol (binary frames, repeated garbage).
    pub const PROTOCOL_VIOLATION: CloseCode = CloseCode(4502);
    /// The client kept sending faster than its rate limit after being warned.
    pub const RATE_LIMITED: CloseCode = CloseCode(4503);
    /// A frame exceeded the size limit.
    pub const FRAME_TOO_LARGE: CloseCode = CloseCode(4504);
    /// A moderator suspended the account: every session ended. Logging in answers
    /// `403 account_suspended` until it is unsuspended.
    pub const ACCOUNT_SUSPENDED: CloseCode = CloseCode(4505);

    /// Every code with its reason string, for `protocol/` and tests.
    pub const ALL: [(CloseCode, &'static str); 11] = [
        (Self::SHUTDOWN, "shutdown"),
        (Self::SLOW_CONSUMER, "slow_consumer"),
        (Self::HEARTBEAT_TIMEOUT, "heartbeat_timeout"),
        (Self::TOO_MANY_CONNECTIONS, "too_many_connections"),
        (Self::TOKEN_EXPIRED, "token_expired"),
        (Self::UNAUTHORIZED, "unauthorized"),
        (Self::TOKEN_REVOKED, "token_revoked"),
        (Self::PROTOCOL_VIOLATION, "protocol_violation"),
        (Self::RATE_LIMITED, "rate_limited"),
        (Self::FRAME_TOO_LARGE, "frame_too_large"),
        (Self::ACCOUNT_SUSPENDED, "account_suspended"),
    ];

    /// The reason string sent with the code.
    pub fn reason(self) -> &'static str {
        Self::ALL.iter().find(|(c, _)| *c == self).map(|(_, r)| *r).unwrap_or("closed")
    }

    /// Whether the client should reconnect and resume.
    pub fn is_reconnect(self) -> bool {
        (4000..4500).contains(&self.0)
    }
}

impl From<crate::auth::AuthFailure> for CloseCode {
    fn from(f: crate::auth::AuthFailure) -> Self {
        use crate::auth::AuthFailure::*;
        match f {
            Missing | Invalid => CloseCode::UNAUTHORIZED,
            Expired => CloseCode::TOKEN_EXPIRED,
            Revoked => CloseCode::TOKEN_REVOKED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_mean_what_the_protocol_says() {
        for (c, _) in CloseCode::ALL {
            assert!((4000..5000).contains(&c.0));
        }
        assert!(CloseCode::SHUTDOWN.is_reconnect());
        assert!(CloseCode::SLOW_CONSUMER.is_reconnect());
        assert!(!CloseCode::TOKEN_REVOKED.is_reconnect());
        let mut codes: Vec<u16> = CloseCode::ALL.iter().map(|(c, _)| c.0).collect();
        codes.dedup();
        assert_eq!(codes.len(), CloseCode::ALL.len());
    }
}
