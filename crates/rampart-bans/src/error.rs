//! Why a ban was not set or a key not understood.

/// The ban engine's errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `consumer:` without a usable id.
    #[error("{0:?}: a consumer id is required")]
    ConsumerId(String),
    /// Not an address or network.
    #[error(transparent)]
    Net(#[from] rampart_net::Error),
    /// The address is in `bans.never`.
    #[error("the address is in bans.never")]
    NeverBanned,
    /// `bans.max_automatic` automatic bans are in force already.
    #[error("the cap on automatic bans is reached")]
    CapReached,
    /// A throttle was asked for a key banned outright.
    #[error("the key is banned outright already")]
    AlreadyBanned,
}
