//! Use cases, shared by REST handlers and socket commands: authorise → validate →
//! store (in a transaction) → commit → publish. The rules of the social network live here
//! and nowhere else; who may see what is decided in [`access`] alone.

pub mod access;
pub mod accounts;
pub mod auth;
pub mod chat;
pub mod comments;
pub mod exports;
pub mod feed;
pub mod graph;
pub mod media;
pub mod moderation;
pub mod notifications;
pub mod posts;
pub mod push;
pub mod reactions;
pub mod users;
