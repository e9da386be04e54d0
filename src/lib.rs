//! Chorus: a realtime, websocket-first social server.
//!
//! # Layout
//! A request or a socket command flows through the layers in one direction:
//!
//! ```text
//!  HTTP (http/)  ─┐                                  ┌─► store/ (SQL: SQLite or PostgreSQL)
//!  /ws (realtime/ws)  ─┼─► services/ (rules, visibility) ──┤
//!  Socket.IO (realtime/sio) ─┘                      └─► broker/ ─► realtime/hub ─► sessions
//!                                 └─► jobs/ (durable outbox: fan-out, mail, media)
//! ```
//!
//! - **Edges** ([`http`], the doors in [`realtime`]) extract and validate input, call a
//!   service, serialise the answer. No rules, no SQL.
//! - **Services** ([`services`]) decide: who may see or do what, what an action causes.
//!   A write is one transaction that also records its durable events and jobs; after it
//!   commits ([`state::AppState::commit`]) the events go to the broker.
//! - **Store** ([`store`]) is all SQL, one text for both backends. It never authorises.
//! - **Broker** ([`broker`]) carries events between instances (in-process or Redis).
//! - **Hub** ([`realtime::hub`]) knows topics and connections, not posts: it hands shared,
//!   once-encoded bytes to bounded per-connection queues.
//! - **Jobs** ([`jobs`]) run background work durably, with retries and a dead-letter state.
//! - **Media** ([`media`]) is the machinery behind uploads — type sniffing, spooling to disk,
//!   image processing on the blocking pool, local and Cloudinary storage — driven by
//!   `services::media` from requests and jobs.
//!
//! [`app::Chorus`] wires everything; [`config::Config`] is everything it can be told.

#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod jobs;
pub mod mail;
pub mod media;
pub mod metrics;
pub mod pagination;
pub mod push;
pub mod ratelimit;
pub mod realtime;
pub mod seed;
pub mod services;
pub mod state;
pub mod store;
