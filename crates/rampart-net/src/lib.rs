//! Rampart's network layer, free of proxy types.
//!
//! - [`IpSet`]: a set of IPv4 and IPv6 networks (CIDRs) built once, looked up in a few
//!   dozen nanoseconds (sorted, merged ranges and a binary search), for allow/deny lists
//!   and trusted proxies.
//! - [`ClientIp`]: the real client address behind trusted proxies, from `Forwarded`
//!   (RFC 7239) or `X-Forwarded-For`, walking from the right and never trusting a hop that
//!   did not come through a trusted one.
//! - [`geo`]: country and autonomous system of an address from MaxMind DB files.
//! - [`proxy_protocol`]: HAProxy's PROXY protocol header (v1 and v2), which a load balancer
//!   sends before TLS or HTTP to name the client.

mod client_ip;
mod error;
pub mod geo;
mod ipset;
pub mod proxy_protocol;

pub use client_ip::{ClientIp, ClientIpError, HeaderSource};
pub use error::Error;
pub use ipset::{net_contains, parse_net, IpSet, IpSetBuilder};
