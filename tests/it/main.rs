//! Integration tests: a real Chorus on a random port, on SQLite and on PostgreSQL.
//! One binary, one module per area.

mod support;

mod auth;
mod browser;
mod chat;
mod cluster;
mod comments;
mod e2e;
mod feeds;
mod fuzz;
mod graph;
mod layout;
mod matrix;
mod media;
mod notifications;
mod ops;
mod posts;
mod privacy;
mod protocol;
mod push;
mod reactions;
mod realtime;
mod safety;
mod socketio;
mod users;
mod visibility;
