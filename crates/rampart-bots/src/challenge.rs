//! A proof-of-work challenge in the spirit of Anubis: a browser without a valid pass gets a
//! page whose script finds a nonce such that `SHA-256(challenge ":" nonce)` starts with
//! `difficulty` zero bits, and trades it for a pass cookie.
//!
//! Both the challenge and the pass are stateless, HMAC-SHA256 signed with the first of the
//! configured keys and accepted under any of them (rotation with overlap; the same keys on
//! every node make a pass from one node valid on all). Each is bound to the client's address
//! prefix (IPv4 /24, IPv6 /64) and to a hash of its User-Agent, so a pass copied to another
//! network or another client is refused; each carries its own expiry.
//!
//! Formats (all ASCII, cookie- and URL-safe):
//! - challenge: `v1.<issued unix s>.<difficulty>.<16 random bytes hex>.<mac>`
//! - pass: `v1.<expires unix s>.<mac>`
//!
//! where `<mac>` is base64url(HMAC(key, kind | fields | address prefix | User-Agent hash)).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::{digest, hmac, rand::SecureRandom};
use std::net::IpAddr;

/// Why a challenge answer or a pass was refused (for logs and events; never shown in full
/// to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not in the expected format.
    Malformed,
    /// The signature does not verify under any key, or the binding (address prefix,
    /// User-Agent) differs.
    BadSignature,
    /// Past its lifetime.
    Expired,
    /// The nonce does not make enough leading zero bits.
    NotSolved,
}

impl Refusal {
    /// A short reason.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed challenge token",
            Refusal::BadSignature => "challenge token not signed for this client",
            Refusal::Expired => "challenge token expired",
            Refusal::NotSolved => "challenge not solved",
        }
    }
}

/// The signing keys: the first signs, all verify.
pub struct Keys {
    keys: Vec<hmac::Key>,
}

impl Keys {
    /// From secrets (at least one).
    pub fn new(secrets: &[&[u8]]) -> Keys {
        Keys {
            keys: secrets
                .iter()
                .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s))
                .collect(),
        }
    }

    /// One random key (a single node whose passes end with the process).
    pub fn random() -> Keys {
        let mut secret = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut secret)
            .expect("the system's random source");
        Keys::new(&[&secret])
    }

    fn sign(&self, msg: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.keys[0], msg).as_ref())
    }

    fn verify(&self, msg: &[u8], mac: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(mac) else {
            return false;
        };
        // ring compares in constant time.
        self.keys.iter().any(|k| hmac::verify(k, msg, &tag).is_ok())
    }
}

/// Who a token is for: the client's address prefix and User-Agent.
pub struct Client {
    prefix: String,
    ua: [u8; 32],
}

impl Client {
    /// IPv4 addresses by /24, IPv6 by /64 (a client's address may change within its
    /// network); the User-Agent by SHA-256.
    pub fn new(ip: IpAddr, user_agent: &[u8]) -> Client {
        let prefix = match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                format!("{}.{}.{}.0/24", o[0], o[1], o[2])
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        };
        let mut ua = [0u8; 32];
        ua.copy_from_slice(digest::digest(&digest::SHA256, user_agent).as_ref());
        Client { prefix, ua }
    }

    fn message(&self, kind: &str, fields: &str) -> Vec<u8> {
        let mut m = Vec::with_capacity(kind.len() + fields.len() + self.prefix.len() + 40);
        m.extend_from_slice(kind.as_bytes());
        m.push(b'|');
        m.extend_from_slice(fields.as_bytes());
        m.push(b'|');
        m.extend_from_slice(self.prefix.as_bytes());
        m.push(b'|');
        m.extend_from_slice(&self.ua);
        m
    }
}

/// Longest a token may be (anything longer is malformed, before any work).
pub const MAX_TOKEN: usize = 256;

/// A new challenge for `client`.
pub fn issue(keys: &Keys, client: &Client, difficulty: u8, now: u64) -> String {
    let mut nonce = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut nonce)
        .expect("the system's random source");
    let hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    let fields = format!("v1.{now}.{difficulty}.{hex}");
    let mac = keys.sign(&client.message("challenge", &fields));
    format!("{fields}.{mac}")
}

/// Leading zero bits of a digest.
pub fn zero_bits(hash: &[u8]) -> u32 {
    let mut n = 0;
    for &b in hash {
        if b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

/// Checks an answer: the challenge was issued to `client` by one of `keys` less than
/// `max_age` seconds ago, and `SHA-256(challenge ":" nonce)` has its difficulty in zero bits.
pub fn check_answer(
    keys: &Keys,
    client: &Client,
    challenge: &str,
    nonce: &str,
    now: u64,
    max_age: u64,
) -> Result<(), Refusal> {
    if challenge.len() > MAX_TOKEN || nonce.is_empty() || nonce.len() > 32 {
        return Err(Refusal::Malformed);
    }
    if !nonce.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::Malformed);
    }
    let (fields, mac) = challenge.rsplit_once('.').ok_or(Refusal::Malformed)?;
    let parts: Vec<&str> = fields.split('.').collect();
    let [v, issued, difficulty, random] = parts[..] else {
        return Err(Refusal::Malformed);
    };
    if v != "v1" || random.len() != 32 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Refusal::Malformed);
    }
    let issued: u64 = issued.parse().map_err(|_| Refusal::Malformed)?;
    let difficulty: u32 = difficulty.parse().map_err(|_| Refusal::Malformed)?;
    if !keys.verify(&client.message("challenge", fields), mac) {
        return Err(Refusal::BadSignature);
    }
    if issued > now + 60 || now.saturating_sub(issued) > max_age {
        return Err(Refusal::Expired);
    }
    let hash = digest::digest(&digest::SHA256, format!("{challenge}:{nonce}").as_bytes());
    if zero_bits(hash.as_ref()) < difficulty {
        return Err(Refusal::NotSolved);
    }
    Ok(())
}

/// A pass for `client`, valid until `now + ttl`.
pub fn pass(keys: &Keys, client: &Client, now: u64, ttl: u64) -> String {
    let fields = format!("v1.{}", now + ttl);
    let mac = keys.sign(&client.message("pass", &fields));
    format!("{fields}.{mac}")
}

/// Checks a pass presented by `client`.
pub fn check_pass(keys: &Keys, client: &Client, pass: &str, now: u64) -> Result<(), Refusal> {
    if pass.len() > MAX_TOKEN {
        return Err(Refusal::Malformed);
    }
    let (fields, mac) = pass.rsplit_once('.').ok_or(Refusal::Malformed)?;
    let expires = fields
        .strip_prefix("v1.")
        .and_then(|e| e.parse::<u64>().ok())
        .ok_or(Refusal::Malformed)?;
    if !keys.verify(&client.message("pass", fields), mac) {
        return Err(Refusal::BadSignature);
    }
    if expires <= now {
        return Err(Refusal::Expired);
    }
    Ok(())
}

/// Solves a challenge (what the page's script does), for tests and tools.
pub fn solve(challenge: &str, difficulty: u8) -> u64 {
    (0u64..)
        .find(|n| {
            let h = digest::digest(&digest::SHA256, format!("{challenge}:{n}").as_bytes());
            zero_bits(h.as_ref()) >= u32::from(difficulty)
        })
        .expect("a nonce exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(ip: &str, ua: &str) -> Client {
        Client::new(ip.parse().unwrap(), ua.as_bytes())
    }

    #[test]
    fn an_answer_earns_a_pass_for_that_client_only() {
        let keys = Keys::new(&[b"k1-0123456789abcdef0123456789abcdef"]);
        let me = client("192.0.2.10", "Mozilla/5.0");
        let c = issue(&keys, &me, 10, 1000);
        let n = solve(&c, 10).to_string();
        assert_eq!(check_answer(&keys, &me, &c, &n, 1010, 300), Ok(()));
        // Same /24 is the same client; another network or another browser is not.
        let neighbour = client("192.0.2.99", "Mozilla/5.0");
        assert_eq!(check_answer(&keys, &neighbour, &c, &n, 1010, 300), Ok(()));
        for other in [
            client("198.51.100.10", "Mozilla/5.0"),
            client("192.0.2.10", "curl/8"),
        ] {
            assert_eq!(
                check_answer(&keys, &other, &c, &n, 1010, 300),
                Err(Refusal::BadSignature)
            );
        }
        assert_eq!(
            check_answer(&keys, &me, &c, &n, 1400, 300),
            Err(Refusal::Expired)
        );
        let wrong = (0u64..)
            .map(|k| k.to_string())
            .find(|k| {
                let h = digest::digest(&digest::SHA256, format!("{c}:{k}").as_bytes());
                zero_bits(h.as_ref()) < 10
            })
            .unwrap();
        assert_eq!(
            check_answer(&keys, &me, &c, &wrong, 1010, 300),
            Err(Refusal::NotSolved)
        );
        // The difficulty is signed: lowering it breaks the signature.
        let easier = c.replacen(".10.", ".1.", 1);
        assert_eq!(
            check_answer(&keys, &me, &easier, &n, 1010, 300),
            Err(Refusal::BadSignature)
        );

        let p = pass(&keys, &me, 1010, 3600);
        assert_eq!(check_pass(&keys, &me, &p, 2000), Ok(()));
        assert_eq!(check_pass(&keys, &me, &p, 4610), Err(Refusal::Expired));
        assert_eq!(
            check_pass(&keys, &client("203.0.113.5", "Mozilla/5.0"), &p, 2000),
            Err(Refusal::BadSignature)
        );
        // A later expiry with the old signature is a forgery.
        let forged = p.replacen("v1.4610", "v1.9999999999", 1);
        assert_eq!(
            check_pass(&keys, &me, &forged, 2000),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn rotation_keeps_old_passes_until_the_old_key_goes() {
        let old = Keys::new(&[b"old-key-0123456789abcdef0123456789"]);
        let both = Keys::new(&[
            b"new-key-0123456789abcdef0123456789",
            b"old-key-0123456789abcdef0123456789",
        ]);
        let new_only = Keys::new(&[b"new-key-0123456789abcdef0123456789"]);
        let me = client("2001:db8:1:2:3:4:5:6", "UA");
        let p = pass(&old, &me, 0, 100);
        assert_eq!(check_pass(&both, &me, &p, 1), Ok(()));
        assert_eq!(
            check_pass(&new_only, &me, &p, 1),
            Err(Refusal::BadSignature)
        );
        // Same /64.
        let p2 = pass(&both, &me, 0, 100);
        assert_eq!(
            check_pass(&new_only, &client("2001:db8:1:2::9", "UA"), &p2, 1),
            Ok(())
        );
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        let keys = Keys::random();
        let me = client("192.0.2.1", "UA");
        for bad in [
            "",
            ".",
            "v1",
            "v1.",
            "v1.x.y",
            "v2.1.2",
            "v1.1.sig.extra.more",
            "v1.18446744073709551615.AAAA",
            "....",
            "v1.\u{0}.x",
        ] {
            assert!(check_pass(&keys, &me, bad, 0).is_err(), "{bad}");
            assert!(check_answer(&keys, &me, bad, "1", 0, 60).is_err(), "{bad}");
        }
        let long = "v1.".to_string() + &"9".repeat(300);
        assert_eq!(check_pass(&keys, &me, &long, 0), Err(Refusal::Malformed));
        let c = issue(&keys, &me, 4, 0);
        for nonce in ["", "-1", "1e3", "１", &"9".repeat(40)] {
            assert_eq!(
                check_answer(&keys, &me, &c, nonce, 0, 60),
                Err(Refusal::Malformed)
            );
        }
        assert_eq!(zero_bits(&[0, 0, 0x0f]), 20);
        assert_eq!(zero_bits(&[0x80]), 0);
    }
}
