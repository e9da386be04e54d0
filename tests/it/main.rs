//! Integration tests: a real Chorus on a random port, on SQLite and on PostgreSQL.
//! One binary, one module per area.

mod support;

mod auth;
mod cluster;
mod media;
mod ops;
mod protocol;
mod realtime;
mod socketio;
mod users;
