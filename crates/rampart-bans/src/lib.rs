//! Bans and automatic responses, free of proxy types.
//!
//! - [`BanList`]: who is banned (IPs, networks, consumers) until when and why. Requests
//!   read an immutable snapshot (no lock, no Redis round trip); changes rebuild it. With
//!   Redis the bans live in one hash shared by every node, and a pub/sub message tells the
//!   other nodes to re-read it (well under a second); a periodic re-read catches missed
//!   messages. While Redis is down, each node keeps serving with the copy it has.
//! - [`Responses`]: playbooks that count a key's security events in a window (locally or
//!   in Redis, so nodes count together) and, at the threshold, ban it, longer on repeat.

mod error;
mod key;
mod list;
mod playbook;

pub use error::Error;
pub use key::BanKey;
pub use list::{Ban, BanList, BanSettings, Refused};
pub use playbook::{Action, EventKind, Playbook, Responses, Subject};

/// Milliseconds since the Unix epoch: ban expiry is wall-clock time, shared across nodes.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
