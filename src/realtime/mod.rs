//! Realtime: the hub (local registry and fan-out), per-connection sessions, and the two
//! doors — Socket.IO (socketioxide) and plain WebSocket — that share them.
//!
//! ```text
//! broker ──► hub ──(bounded queue per session)──► session task ──► ws.rs  (frames)
//!                 └─(room broadcast, ephemeral)───────────────────► sio.rs (socket.io events)
//! client ──► door ──► Command ──► Session ──► services (authorise, act) ──► broker …
//! ```

pub mod close;
pub mod commands;
pub mod frames;
pub mod hub;
pub mod presence;
pub mod session;
pub mod sio;
pub mod ws;
