//! Frames of the plain-WebSocket protocol (`protocol/PROTOCOL.md`): parsing what clients
//! send, encoding what the server sends. Event frames are encoded in `hub.rs` (once per
//! topic, shared); everything here is per-connection and rare.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::error::AppError;

/// A client frame, parsed once with every field optional; which fields an op needs is
/// checked when it is dispatched, so a bad frame still yields its `id` for the error reply.
#[derive(Debug, Deserialize)]
pub struct ClientFrame<'a> {
    /// Correlation id, echoed in the `ok`/`error` reply.
    pub id: Option<u64>,
    /// Operation.
    #[serde(borrow)]
    pub op: &'a str,
    /// `auth`: the access token.
    #[serde(default)]
    pub token: Option<String>,
    /// `subscribe` / `unsubscribe`: the topic.
    #[serde(default)]
    pub topic: Option<String>,
    /// `subscribe`: resume from this position (a `seq` string).
    #[serde(default)]
    pub from: Option<String>,
    /// `resume` / `auth`: topic → last seq seen.
    #[serde(default)]
    pub positions: Option<HashMap<String, String>>,
    /// Action payloads (`chat.send`…).
    #[serde(default, borrow)]
    pub data: Option<&'a RawValue>,
}

/// Why a frame could not be handled at all (as opposed to a failed command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Not JSON, or not an object with an `op`.
    BadFrame,
    /// `op` unknown.
    UnknownOp,
}

impl FrameError {
    /// The error code sent to the client.
    pub fn code(self) -> &'static str {
        match self {
            FrameError::BadFrame => "bad_frame",
            FrameError::UnknownOp => "unknown_op",
        }
    }
}

/// Parses a text frame.
pub fn parse(text: &str) -> Result<ClientFrame<'_>, FrameError> {
    serde_json::from_str(text).map_err(|_| FrameError::BadFrame)
}

/// Best-effort `id` of a frame that failed to parse, so the error can still be correlated.
pub fn salvage_id(text: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct OnlyId {
        id: Option<u64>,
    }
    serde_json::from_str::<OnlyId>(text).ok().and_then(|f| f.id)
}

/// `{"op":"hello","data":…}`.
pub fn hello(data: Value) -> String {
    json!({"op": "hello", "data": data}).to_string()
}

/// `{"id":…,"op":"ok","data":…}`.
pub fn ok(id: Option<u64>, data: &Value) -> String {
    match id {
        Some(id) => json!({"id": id, "op": "ok", "data": data}).to_string(),
        None => json!({"op": "ok", "data": data}).to_string(),
    }
}

/// `{"id":…,"op":"error","error":{"code","message","fields"?}}` for a failed command.
pub fn error(id: Option<u64>, err: &AppError) -> String {
    let body = err.body();
    let mut v = json!({"op": "error", "error": body.error});
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v.to_string()
}

/// An error frame for a frame-level problem (`bad_frame`, `unknown_op`, `rate_limited`…).
pub fn protocol_error(id: Option<u64>, code: &str, message: &str) -> String {
    let mut v = json!({"op": "error", "error": {"code": code, "message": message}});
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v.to_string()
}

/// `{"op":"pong"}` (with the ping's id when it had one).
pub fn pong(id: Option<u64>) -> String {
    match id {
        Some(id) => json!({"id": id, "op": "pong"}).to_string(),
        None => r#"{"op":"pong"}"#.to_string(),
    }
}

/// `{"op":"reconnect","reason":…,"code":…}`: sent before a reconnect-range close.
pub fn reconnect(reason: &str, code: u16) -> String {
    json!({"op": "reconnect", "reason": reason, "code": code}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_field_and_keeps_ids_of_bad_frames() {
        let f = parse(r#"{"id":7,"op":"subscribe","topic":"post:42","from":"3"}"#).unwrap();
        assert_eq!(
            (f.id, f.op, f.topic.as_deref(), f.from.as_deref()),
            (Some(7), "subscribe", Some("post:42"), Some("3"))
        );
        let f = parse(r#"{"id":9,"op":"chat.send","data":{"body":"hi"}}"#).unwrap();
        assert_eq!(f.data.unwrap().get(), r#"{"body":"hi"}"#);
        assert_eq!(parse("not json").unwrap_err(), FrameError::BadFrame);
        assert_eq!(parse(r#"{"id":1}"#).unwrap_err(), FrameError::BadFrame);
        assert_eq!(salvage_id(r#"{"id":5,"op":12}"#), Some(5));
    }

    #[test]
    fn replies_have_the_documented_shape() {
        assert_eq!(ok(Some(1), &json!({"a":1})), r#"{"data":{"a":1},"id":1,"op":"ok"}"#);
        let e: Value = serde_json::from_str(&error(Some(2), &AppError::NotFound)).unwrap();
        assert_eq!(e, json!({"id":2,"op":"error","error":{"code":"not_found","message":"not found"}}));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::Id;
    use crate::events::Topic;

    proptest! {
        /// Any text a client sends is a frame or a `bad_frame`, never a panic; the id of a
        /// frame that does not parse is salvaged when it is there.
        #[test]
        fn any_text_is_a_frame_or_a_bad_frame(text in any::<String>()) {
            match parse(&text) {
                Ok(f) => prop_assert!(serde_json::from_str::<Value>(&text).is_ok(), "{}", f.op),
                Err(e) => prop_assert_eq!(e, FrameError::BadFrame),
            }
            let _ = salvage_id(&text);
        }

        /// Objects with arbitrary fields of arbitrary JSON types: the same.
        #[test]
        fn any_object_is_a_frame_or_a_bad_frame(
            op in proptest::option::of(any::<String>()),
            id in proptest::option::of(any::<i64>()),
            topic in proptest::option::of(any::<String>()),
            from in proptest::option::of(any::<String>()),
            extra in any::<String>(),
        ) {
            let frame = json!({"op": op, "id": id, "topic": topic, "from": from, extra: 1});
            let text = frame.to_string();
            let parsed = parse(&text);
            if op.is_none() || id.is_some_and(|i| i < 0) {
                prop_assert!(parsed.is_err());
            }
            if let Ok(f) = parsed {
                prop_assert_eq!(Some(f.op), op.as_deref());
                prop_assert_eq!(f.id, id.map(|i| i as u64));
            }
        }

        /// Topic names from clients parse or are refused; a parsed one names itself again.
        #[test]
        fn any_topic_name_parses_or_is_refused(name in any::<String>(), me in 0i64..i64::MAX) {
            if let Some(t) = Topic::from_wire(&name, Id(me)) {
                prop_assert_eq!(Topic::from_wire(&t.wire_name(), Id(me)), Some(t));
            }
        }
    }
}
