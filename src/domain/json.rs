//! Checks on client JSON before it is decoded.

/// Whether the JSON text `raw` has a string with a NUL character (`\u0000` with an odd run
/// of backslashes before the `u`: `\\u0000` is the text `\u0000`, not a NUL). JSON may
/// carry NUL, but PostgreSQL `TEXT` cannot store it — and nothing a client sends needs one
/// — so the edges refuse such input with `400` rather than let the database fail with a 500.
pub fn has_nul(raw: &[u8]) -> bool {
    let mut i = 0;
    while let Some(off) = find(&raw[i..], b"u0000") {
        let at = i + off;
        let slashes = raw[..at].iter().rev().take_while(|b| **b == b'\\').count();
        if slashes % 2 == 1 {
            return true;
        }
        i = at + 1;
    }
    false
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::has_nul;

    #[test]
    fn finds_escaped_nuls_only() {
        assert!(has_nul(br#"{"login":"a\u0000b"}"#));
        assert!(has_nul(br#"{"login":"\\\u0000"}"#), "an escaped backslash, then a NUL");
        assert!(!has_nul(br#"{"login":"\\u0000"}"#), "the six characters \\u0000");
        assert!(!has_nul(br#"{"login":"u0000"}"#));
        assert!(!has_nul(br#"{"n":"\u0001"}"#));
        assert!(!has_nul(b""));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    proptest! {
        /// A JSON text carries a NUL exactly when one of its strings holds one.
        #[test]
        fn nul_is_found_exactly_when_there(s in any::<String>(), k in any::<String>()) {
            let text = serde_json::json!({ k.clone(): s.clone() }).to_string();
            prop_assert_eq!(super::has_nul(text.as_bytes()), s.contains('\0') || k.contains('\0'));
        }
    }
}
