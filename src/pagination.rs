//! Cursor pagination, the one way every list is paged: `?cursor=&limit=` in,
//! `{"items":[…],"next_cursor":…}` out.
//!
//! A cursor is the sort key of the last item returned, base64url-encoded JSON, so it stays
//! valid when new rows are inserted before or after it (unlike an offset) and clients treat
//! it as opaque. Lists sort on a unique key (usually the time-ordered id, or `(score, id)`),
//! which is what makes pages free of gaps and duplicates.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::AppError;

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest page size.
pub const MAX_LIMIT: u32 = 100;

/// `?cursor=&limit=` of a list request.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Items per page, 1–100 (default 20).
    pub limit: Option<u32>,
}

/// A validated page request with its decoded cursor.
#[derive(Clone, Debug)]
pub struct PageRequest<C> {
    /// Decoded position after which to continue, `None` for the first page.
    pub after: Option<C>,
    /// Items per page.
    pub limit: u32,
}

impl PageQuery {
    /// Validates the limit and decodes the cursor into the list's key type.
    pub fn parse<C: DeserializeOwned>(&self) -> Result<PageRequest<C>, AppError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(AppError::field("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(decode_cursor(c)?),
        };
        Ok(PageRequest { after, limit })
    }
}

/// Encodes a sort key as an opaque cursor.
pub fn encode_cursor<C: Serialize>(key: &C) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).expect("cursor keys serialise"))
}

/// Decodes a cursor made by [`encode_cursor`].
pub fn decode_cursor<C: DeserializeOwned>(s: &str) -> Result<C, AppError> {
    let invalid = || AppError::field("cursor", "is not a valid cursor");
    if s.len() > 512 {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| invalid())?;
    serde_json::from_slice(&bytes).map_err(|_| invalid())
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Cursor of the next page, `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from rows fetched with `LIMIT limit + 1`: the extra row only tells that
    /// a next page exists; the cursor is the key of the last row kept.
    pub fn from_rows<C: Serialize>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> C) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more { rows.last().map(|r| encode_cursor(&key(r))) } else { None };
        Page { items: rows, next_cursor }
    }

    /// Converts the items, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor(&(42i64, 7i64));
        assert_eq!(decode_cursor::<(i64, i64)>(&c).unwrap(), (42, 7));
        assert!(decode_cursor::<(i64, i64)>("!!!").is_err());
        assert!(decode_cursor::<(i64, i64)>(&encode_cursor(&"text")).is_err());
    }

    #[test]
    fn limit_is_bounded() {
        let q = PageQuery { cursor: None, limit: Some(101) };
        assert!(q.parse::<i64>().is_err());
        let q = PageQuery { cursor: None, limit: Some(0) };
        assert!(q.parse::<i64>().is_err());
        let q = PageQuery::default();
        assert_eq!(q.parse::<i64>().unwrap().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn page_from_rows_sets_cursor_only_when_more() {
        let p = Page::from_rows(vec![1, 2, 3], 2, |x| *x);
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(decode_cursor::<i32>(p.next_cursor.as_deref().unwrap()).unwrap(), 2);
        let p = Page::from_rows(vec![1, 2], 2, |x| *x);
        assert!(p.next_cursor.is_none());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::Id;

    proptest! {
        /// A cursor from a client decodes to the list's key or is a `validation_failed` on
        /// `cursor`, never a panic.
        #[test]
        fn any_cursor_decodes_or_is_refused(s in any::<String>()) {
            if let Err(e) = decode_cursor::<(i64, Id)>(&s) {
                prop_assert_eq!(e.code(), "validation_failed");
            }
            let q = PageQuery { cursor: Some(s), limit: None };
            if let Err(e) = q.parse::<(i64, Id)>() {
                prop_assert_eq!(e.code(), "validation_failed");
            }
        }

        /// Cursors the server makes come back as the same key.
        #[test]
        fn cursors_round_trip(t in any::<i64>(), id in 0i64..i64::MAX) {
            let c = encode_cursor(&(t, Id(id)));
            prop_assert_eq!(decode_cursor::<(i64, Id)>(&c).unwrap(), (t, Id(id)));
        }

        /// Any limit is accepted in range and refused outside it.
        #[test]
        fn limits_are_checked(limit in any::<u32>()) {
            let r = PageQuery { cursor: None, limit: Some(limit) }.parse::<(i64, Id)>();
            prop_assert_eq!(r.is_ok(), (1..=MAX_LIMIT).contains(&limit));
        }
    }
}
