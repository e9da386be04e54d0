//! Use cases, shared by REST handlers and socket commands: authorise → validate →
//! store (in a transaction) → commit → publish. The rules of the social network live here
//! and nowhere else.

pub mod access;
pub mod auth;
pub mod media;
pub mod users;
