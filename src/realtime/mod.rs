//! Realtime: the hub (local registry and fan-out), per-connection sessions, and the two
//! doors — Socket.IO (socketioxide) and plain WebSocket — that share them.
//!
//! ```text
//! broker ──► hub ──(bounded queue per session)──► conn.rs loop ──► ws.rs  (frames)
//!                 │                                  (one per      └► sio.rs (socket.io events)
//!                 │                                   session)
//!                 └─(room broadcast, ephemeral)─────────────────────► sio.rs
//! client ──► door ──► Command ──► Session ──► services (authorise, act) ──► broker …
//! ```

pub mod close;
pub mod commands;
pub mod conn;
pub mod frames;
pub mod hub;
pub mod presence;
pub mod session;
pub mod sio;
pub mod ws;
