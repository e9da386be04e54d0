//! Ids, times and values that validate themselves. Nothing here does I/O.

pub mod ids;
pub mod json;
pub mod time;
pub mod user;

pub use ids::{Id, IdGen};
pub use time::{Timestamp, now_ms};
