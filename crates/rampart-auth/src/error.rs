//! Why a part of the authentication config cannot be used, or keys cannot be fetched.

/// The errors of `rampart-auth`. Request-time refusals are not errors but reasons
/// (`&'static str`, see [`crate::jwt::Reason`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file (key PEM, htpasswd, LDAP CA) cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// An htpasswd line without a `:`.
    #[error("{path}:{line}: expected user:hash")]
    HtpasswdLine {
        /// The htpasswd file.
        path: String,
        /// 1-based line number.
        line: usize,
    },
    /// An htpasswd line whose hash is refused (a hash format error).
    #[error("{path}:{line}: {source}")]
    HtpasswdHash {
        /// The htpasswd file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The hash format error.
        #[source]
        source: Box<Error>,
    },
    /// A `$argon2…` hash that is not a valid PHC string.
    #[error("invalid argon2 hash: {0}")]
    Argon2Hash(#[source] argon2::password_hash::Error),
    /// A `$2a$`/`$2b$`/`$2y$` hash of the wrong length.
    #[error("invalid bcrypt hash length")]
    BcryptHashLength,
    /// A hash that is neither argon2 nor bcrypt.
    #[error("unsupported password hash: use argon2id (rampart hash-password) or bcrypt")]
    UnsupportedHash,
    /// Hashing a password failed.
    #[error("{0}")]
    HashPassword(#[source] argon2::password_hash::Error),
    /// `none` in a JWT issuer's algorithms.
    #[error("algorithm none is never allowed")]
    AlgorithmNone,
    /// A JWT algorithm name we do not know.
    #[error("unknown JWT algorithm {name:?}")]
    UnknownAlgorithm {
        /// The name as written.
        name: String,
    },
    /// A JWT issuer without algorithms.
    #[error("at least one algorithm is required")]
    NoAlgorithm,
    /// A JWT key PEM that is no public key we can use.
    #[error("{path}: not an RSA, EC or Ed25519 public key PEM")]
    NotAPublicKey {
        /// The PEM file.
        path: String,
    },
    /// A JWT key with both or neither of `secret` and `pem`.
    #[error("a JWT key needs exactly one of secret or pem")]
    KeySource,
    /// A JWT issuer without any source of keys.
    #[error("no keys: give keys, jwks_url or discovery: true")]
    NoKeys,
    /// The OIDC discovery document cannot be fetched or parsed.
    #[error("OIDC discovery {url}: {source}")]
    Discovery {
        /// The discovery document URL.
        url: String,
        /// The HTTP or JSON error.
        #[source]
        source: reqwest::Error,
    },
    /// The OIDC discovery document is about another issuer.
    #[error("OIDC discovery {url}: issuer mismatch")]
    DiscoveryIssuer {
        /// The discovery document URL.
        url: String,
    },
    /// The OIDC discovery document names no JWKS.
    #[error("OIDC discovery {url}: no jwks_uri")]
    DiscoveryNoJwksUri {
        /// The discovery document URL.
        url: String,
    },
    /// The JWKS cannot be fetched or parsed.
    #[error("JWKS {uri}: {source}")]
    Jwks {
        /// The JWKS URL.
        uri: String,
        /// The HTTP or JSON error.
        #[source]
        source: reqwest::Error,
    },
    /// The HTTP client cannot be built.
    #[error("{0}")]
    HttpClient(#[source] reqwest::Error),
    /// An LDAP URL of another scheme.
    #[error("ldap url {url:?} must start with ldap:// or ldaps://")]
    LdapUrl {
        /// The URL as configured.
        url: String,
    },
    /// An LDAP bind DN without the `{user}` placeholder.
    #[error("ldap bind_dn must contain {{user}}")]
    LdapBindDn,
    /// The LDAP CA file is not valid PEM.
    #[error("{path}: {source}")]
    CaPem {
        /// The CA file.
        path: String,
        /// The PEM error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate of the LDAP CA file is not a usable trust anchor.
    #[error("{path}: {source}")]
    CaCertificate {
        /// The CA file.
        path: String,
        /// Why rustls refused it.
        #[source]
        source: rustls::Error,
    },
    /// The TLS client config cannot be built.
    #[error("{0}")]
    Tls(#[source] rustls::Error),
    /// The lockout's Redis URL.
    #[error("lockout {0}")]
    Lockout(#[source] rampart_redis::Error),
}

#[cfg(test)]
mod tests {
    use crate::{jwt, ldap, load_htpasswd, secrets, Lockout};
    use rampart_config::{Ldap, LockoutSettings};

    /// The messages are what `rampart validate` prints: their wording is part of the contract.
    #[test]
    fn messages() {
        let msg = |r: Result<(), super::Error>| r.unwrap_err().to_string();
        assert_eq!(
            msg(secrets::check_hash_format("{SHA}abc")),
            "unsupported password hash: use argon2id (rampart hash-password) or bcrypt"
        );
        assert_eq!(
            msg(secrets::check_hash_format("$2b$04$short")),
            "invalid bcrypt hash length"
        );
        assert!(msg(secrets::check_hash_format("$argon2id$x")).starts_with("invalid argon2 hash: "));
        assert_eq!(
            msg(jwt::parse_algorithms(&["RS256".into(), "None".into()]).map(drop)),
            "algorithm none is never allowed"
        );
        assert_eq!(
            msg(jwt::parse_algorithms(&["RS257".into()]).map(drop)),
            "unknown JWT algorithm \"RS257\""
        );

        let dir = std::env::temp_dir().join(format!("rampart-auth-errors-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("htpasswd");
        let p = path.display().to_string();
        std::fs::write(&path, "# users\nalice:{SHA}abc\n").unwrap();
        assert_eq!(
            msg(load_htpasswd(&p).map(drop)),
            format!(
                "{p}:2: unsupported password hash: use argon2id (rampart hash-password) or bcrypt"
            )
        );
        std::fs::write(&path, "alice\n").unwrap();
        assert_eq!(
            msg(load_htpasswd(&p).map(drop)),
            format!("{p}:1: expected user:hash")
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = format!("{p}.missing");
        assert!(msg(load_htpasswd(&missing).map(drop))
            .starts_with(&format!("{missing}: cannot read: ")));

        let ldap = |v: serde_json::Value| -> Ldap { serde_json::from_value(v).unwrap() };
        assert_eq!(
            msg(ldap::LdapAuth::new(&ldap(
                serde_json::json!({"url": "http://x", "bind_dn": "uid={user}"})
            ))
            .map(drop)),
            "ldap url \"http://x\" must start with ldap:// or ldaps://"
        );
        assert_eq!(
            msg(ldap::LdapAuth::new(&ldap(
                serde_json::json!({"url": "ldap://x", "bind_dn": "uid=a"})
            ))
            .map(drop)),
            "ldap bind_dn must contain {user}"
        );
        let settings = LockoutSettings {
            redis: Some("not a url".into()),
            ..LockoutSettings::default()
        };
        assert!(msg(Lockout::new(settings).map(drop)).starts_with("lockout redis not a url: "));
    }
}
