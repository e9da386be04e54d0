//! Realtime: the hub (local registry and fan-out), per-connection sessions, and the two
//! doors — Socket.IO (socketioxide) and plain WebSocket — that share them.

pub mod close;
pub mod hub;
