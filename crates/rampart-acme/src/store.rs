//! What ACME state Rampart keeps on disk: the account's credentials and, per certificate,
//! its chain and key. Files holding a key are written 0600 through a temporary file and a
//! rename, so a crash never leaves half a key or a chain without its key.

use rustls::sign::CertifiedKey;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A certificate Rampart can serve, with what renewal needs to know of it.
#[derive(Clone)]
pub struct Issued {
    /// The chain, leaf first, as PEM.
    pub chain_pem: String,
    /// The leaf's private key, as PEM.
    pub key_pem: String,
    /// Ready for rustls.
    pub key: Arc<CertifiedKey>,
    /// The leaf's `notAfter`.
    pub not_after: SystemTime,
    /// The leaf's serial number (hex), for events.
    pub serial: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Issued")
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish()
    }
}

impl Issued {
    /// Checks a chain and key for `domains`: they parse, belong together, the leaf names
    /// every domain and has not expired.
    pub fn parse(chain_pem: &str, key_pem: &str, domains: &[String]) -> Result<Issued, String> {
        let ck = rampart_tls::certified_key_from_pem(
            chain_pem.as_bytes(),
            key_pem.as_bytes(),
            "certificate",
        )
        .map_err(|e| e.to_string())?;
        let leaf = ck.cert[0].clone();
        let (_, x) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|e| format!("certificate: not valid X.509: {e}"))?;
        let names = rampart_tls::dns_names(&leaf);
        if let Some(missing) = domains
            .iter()
            .find(|d| !names.iter().any(|n| n.eq_ignore_ascii_case(d)))
        {
            return Err(format!("certificate does not name {missing}"));
        }
        let secs = x.validity().not_after.timestamp();
        let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
        if not_after <= SystemTime::now() {
            return Err("certificate has expired".into());
        }
        Ok(Issued {
            chain_pem: chain_pem.to_string(),
            key_pem: key_pem.to_string(),
            key: Arc::new(ck),
            not_after,
            serial: x.raw_serial_as_string().replace(':', ""),
        })
    }
}

/// Files in the storage directory for one set of domains.
pub struct Storage {
    dir: PathBuf,
    /// File name stem: the first domain.
    stem: String,
}

impl Storage {
    /// The storage for `domains` in `dir` (created 0700 if missing).
    pub fn open(dir: &Path, domains: &[String]) -> Result<Storage, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let stem = domains
            .first()
            .map(|d| {
                d.replace(
                    |c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-',
                    "_",
                )
            })
            .unwrap_or_else(|| "certificate".into());
        Ok(Storage {
            dir: dir.to_path_buf(),
            stem,
        })
    }

    /// Where the chain is kept.
    pub fn chain_path(&self) -> PathBuf {
        self.dir.join(format!("{}.crt.pem", self.stem))
    }

    /// Where the key is kept.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join(format!("{}.key.pem", self.stem))
    }

    /// Where the account's credentials are kept.
    pub fn account_path(&self) -> PathBuf {
        self.dir.join("account.json")
    }

    /// The stored certificate: `Ok(None)` when there is none, `Err` when what is stored
    /// cannot be used (damaged, expired, or not for these domains).
    pub fn load(&self, domains: &[String]) -> Result<Option<Issued>, String> {
        let (c, k) = (self.chain_path(), self.key_path());
        if !c.exists() && !k.exists() {
            return Ok(None);
        }
        let chain = std::fs::read_to_string(&c).map_err(|e| format!("{}: {e}", c.display()))?;
        let key = std::fs::read_to_string(&k).map_err(|e| format!("{}: {e}", k.display()))?;
        Issued::parse(&chain, &key, domains)
            .map(Some)
            .map_err(|e| format!("stored {e}"))
    }

    /// Keeps a certificate: the key first, then the chain (each replaced atomically).
    pub fn save(&self, issued: &Issued) -> Result<(), String> {
        write_private(&self.key_path(), issued.key_pem.as_bytes())?;
        write_private(&self.chain_path(), issued.chain_pem.as_bytes())
    }
}

/// Writes `bytes` to `path` through a 0600 temporary file in the same directory, synced
/// and renamed over the old one.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let e = |x: std::io::Error| format!("{}: cannot write: {x}", path.display());
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(&tmp).map_err(e)?;
    f.write_all(bytes).map_err(e)?;
    f.sync_all().map_err(e)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(names: &[&str]) -> (String, String) {
        let k = rcgen::KeyPair::generate().unwrap();
        let p =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        (p.self_signed(&k).unwrap().pem(), k.serialize_pem())
    }

    #[test]
    fn stored_certificates_are_checked_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let domains = vec!["a.test".to_string(), "b.test".to_string()];
        let s = Storage::open(&dir.path().join("acme"), &domains).unwrap();
        assert!(s.load(&domains).unwrap().is_none());

        let (chain, key) = self_signed(&["a.test", "b.test"]);
        let issued = Issued::parse(&chain, &key, &domains).unwrap();
        s.save(&issued).unwrap();
        let back = s.load(&domains).unwrap().unwrap();
        assert_eq!(back.serial, issued.serial);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(s.key_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // Not for these domains.
        let err = s.load(&["c.test".to_string()]).err().unwrap();
        assert!(err.contains("does not name c.test"), "{err}");
        // A key of another certificate.
        let (_, other_key) = self_signed(&["a.test", "b.test"]);
        write_private(&s.key_path(), other_key.as_bytes()).unwrap();
        let err = s.load(&domains).err().unwrap();
        assert!(err.contains("does not match"), "{err}");
        // Damaged.
        std::fs::write(s.chain_path(), "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        assert!(s.load(&domains).is_err());
        // Half there.
        std::fs::remove_file(s.key_path()).unwrap();
        assert!(s.load(&domains).is_err());
    }
}
