//! Ids: 64-bit, time-ordered, made in Rust (no `SERIAL`), shown to clients as strings.
//!
//! Layout (high to low): 41 bits of milliseconds since 2024-01-01, 10 bits of node id,
//! 12 bits of per-millisecond sequence. Ordering by id is ordering by creation time, which
//! is what cursor pagination and "newest first" lists rely on. Two instances need distinct
//! node ids (see [`crate::config::Config::node_id`]); one generator lives in each
//! [`crate::state::AppState`], never in a global.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::time::now_ms;

/// Milliseconds between the Unix epoch and 2024-01-01T00:00:00Z.
const EPOCH_MS: i64 = 1_704_067_200_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;

/// An entity id. Serialises as a decimal string: JavaScript numbers lose precision past 2^53.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::Type)]
#[sqlx(transparent)]
pub struct Id(pub i64);

impl Id {
    /// The raw value stored in the database.
    pub fn get(self) -> i64 {
        self.0
    }

    /// The creation time encoded in the id, in Unix milliseconds.
    pub fn timestamp_ms(self) -> i64 {
        (self.0 >> (NODE_BITS + SEQ_BITS)) + EPOCH_MS
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0)
    }
}

impl FromStr for Id {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v: i64 = s.parse()?;
        // Negative ids are never issued; reject them like any other malformed id.
        if v < 0 { "-".parse::<i64>().map(Id) } else { Ok(Id(v)) }
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Accept "123" (the documented form) and 123 (lenient for hand-written clients).
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw<'a> {
            Str(&'a str),
            Owned(String),
            Num(i64),
        }
        match Raw::deserialize(d)? {
            Raw::Str(s) => s.parse().map_err(|_| serde::de::Error::custom("invalid id")),
            Raw::Owned(s) => s.parse().map_err(|_| serde::de::Error::custom("invalid id")),
            Raw::Num(n) if n >= 0 => Ok(Id(n)),
            Raw::Num(_) => Err(serde::de::Error::custom("invalid id")),
        }
    }
}

impl utoipa::PartialSchema for Id {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("Opaque id (a decimal string)"))
            .examples([serde_json::json!("81985529216486895")])
            .into()
    }
}

impl utoipa::ToSchema for Id {}

/// Makes unique, time-ordered ids for one instance.
#[derive(Debug)]
pub struct IdGen {
    node: i64,
    state: Mutex<(i64, i64)>, // (last millisecond, sequence within it)
}

impl IdGen {
    /// A generator for node `node` (0–1023).
    pub fn new(node: u16) -> Self {
        assert!(node < 1024, "node id out of range");
        Self { node: node as i64, state: Mutex::new((0, 0)) }
    }

    /// This generator's node id (unique per running instance).
    pub fn node(&self) -> u16 {
        self.node as u16
    }

    /// The next id. Never goes backwards, even if the wall clock does.
    pub fn next(&self) -> Id {
        let mut st = self.state.lock().expect("id generator poisoned");
        let mut ms = (now_ms() - EPOCH_MS).max(st.0);
        let seq = if ms == st.0 { st.1 + 1 } else { 0 };
        let seq = if seq >= (1 << SEQ_BITS) {
            // 4096 ids in one millisecond: borrow from the next millisecond.
            ms += 1;
            0
        } else {
            seq
        };
        *st = (ms, seq);
        Id((ms << (NODE_BITS + SEQ_BITS)) | (self.node << SEQ_BITS) | seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_increasing() {
        let g = IdGen::new(7);
        let mut last = Id(0);
        for _ in 0..20_000 {
            let id = g.next();
            assert!(id > last);
            last = id;
        }
    }

    #[test]
    fn ids_serialise_as_strings_and_parse_back() {
        let id = Id(1234567890123456789);
        let s = serde_json::to_string(&id).unwrap();
        assert_eq!(s, "\"1234567890123456789\"");
        assert_eq!(serde_json::from_str::<Id>(&s).unwrap(), id);
        assert!("-5".parse::<Id>().is_err());
        assert!("abc".parse::<Id>().is_err());
    }

    #[test]
    fn id_carries_its_time() {
        let g = IdGen::new(1);
        let before = now_ms();
        let id = g.next();
        assert!((id.timestamp_ms() - before).abs() < 1000);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any path or body id parses to a non-negative id or fails, never panics; ids
        /// print back as what they parsed from (in canonical form).
        #[test]
        fn any_text_is_an_id_or_not(s in any::<String>()) {
            if let Ok(id) = s.parse::<Id>() {
                prop_assert!(id.0 >= 0);
                prop_assert_eq!(id.to_string().parse::<Id>().unwrap(), id);
            }
            let _ = serde_json::from_value::<Id>(serde_json::Value::String(s));
        }

        /// Ids in JSON: the documented string form and plain numbers; negative never.
        #[test]
        fn json_ids(n in any::<i64>()) {
            let from_num = serde_json::from_value::<Id>(serde_json::json!(n));
            let from_str = serde_json::from_value::<Id>(serde_json::json!(n.to_string()));
            prop_assert_eq!(from_num.is_ok(), n >= 0);
            prop_assert_eq!(from_str.is_ok(), n >= 0);
            if n >= 0 {
                prop_assert_eq!(serde_json::to_value(Id(n)).unwrap(), serde_json::json!(n.to_string()));
            }
        }
    }
}
