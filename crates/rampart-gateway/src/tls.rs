//! HTTPS listeners: rustls through Pingora, certificates chosen by SNI from a store that is
//! swapped on rotation, optional mTLS whose verified certificate becomes a `ClientIdentity`.

use crate::metrics::metrics;
use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use rampart_config::{ClientAuthMode, Listener};
use rampart_tls::{CertEntry, CertStore, ClientIdentity, SniResolver};
use rustls::sign::CertifiedKey;
use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Stores the verified client certificate's identity in the connection's TLS digest, where
/// request phases read it back.
struct IdentityCapture;

#[async_trait]
impl TlsAccept for IdentityCapture {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let der = tls.peer_certificate_der()?;
        let id = ClientIdentity::from_der(der)?;
        Some(Arc::new(id))
    }
}

/// One TLS listener's certificates, kept for rotation: its files and, with `tls.acme`,
/// the certificate the ACME manager installed last (served first, the default).
pub struct CertSet {
    pub listener: String,
    pub resolver: Arc<SniResolver>,
    entries: Vec<CertEntry>,
    stamps: Mutex<Vec<Option<(SystemTime, u64)>>>,
    acme: Mutex<Option<Arc<CertifiedKey>>>,
    client_auth: Option<ClientAuthFiles>,
    /// OCSP responses to staple, by leaf certificate (DER). Held while a store is swapped
    /// in, so a reload and a new staple never undo each other.
    staples: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
}

/// A listener's client CA bundle and CRL, re-read like its certificates.
struct ClientAuthFiles {
    ca: PathBuf,
    crl: Option<PathBuf>,
    optional: bool,
    verifier: Arc<rampart_tls::SwappableVerifier>,
}

/// The store for `acme` (if any) and the files of `entries`.
fn build_store(
    acme: Option<&Arc<CertifiedKey>>,
    entries: &[CertEntry],
) -> Result<CertStore, rampart_tls::TlsError> {
    let Some(ck) = acme else {
        return CertStore::load(entries);
    };
    let mut store = CertStore::default();
    store.insert(ck.clone(), &[]);
    for e in entries {
        let k = rampart_tls::load_certified_key(&e.cert_path, &e.key_path)?;
        store.insert(Arc::new(k), &e.hosts);
    }
    Ok(store)
}

fn stamp(p: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl CertSet {
    fn files(&self) -> Vec<&PathBuf> {
        let mut f: Vec<&PathBuf> = self
            .entries
            .iter()
            .flat_map(|e| [&e.cert_path, &e.key_path])
            .collect();
        if let Some(c) = &self.client_auth {
            f.push(&c.ca);
            f.extend(c.crl.as_ref());
        }
        f
    }

    fn current_stamps(&self) -> Vec<Option<(SystemTime, u64)>> {
        self.files().into_iter().map(|p| stamp(p)).collect()
    }

    /// Re-read the files; a broken set is refused and the old certificates stay. The client
    /// CA bundle and CRL are re-read alike: a broken one keeps the verifier in force.
    pub fn reload(&self) -> Result<(), rampart_tls::TlsError> {
        *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) = self.current_stamps();
        let clients = self.reload_client_auth();
        let acme = self.acme.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let certs = match build_store(acme.as_ref(), &self.entries) {
            Ok(store) => {
                let staples = self.staples.lock().unwrap_or_else(|p| p.into_inner());
                self.resolver
                    .replace(store.stapled(|leaf| staples.get(leaf).cloned()));
                drop(staples);
                metrics().tls_reloads.with_label_values(&["ok"]).inc();
                log::warn!("listener {}: certificates reloaded", self.listener);
                Ok(())
            }
            Err(e) => {
                metrics().tls_reloads.with_label_values(&["failed"]).inc();
                log::error!(
                    "listener {}: certificate reload refused, the previous certificates stay: {e}",
                    self.listener
                );
                Err(e)
            }
        };
        certs.and(clients)
    }

    fn reload_client_auth(&self) -> Result<(), rampart_tls::TlsError> {
        let Some(c) = &self.client_auth else {
            return Ok(());
        };
        match rampart_tls::client_verifier(&c.ca, c.crl.as_deref(), c.optional) {
            Ok(v) => {
                c.verifier.replace(v);
                Ok(())
            }
            Err(e) => {
                metrics().tls_reloads.with_label_values(&["failed"]).inc();
                crate::observe::system_event(
                    "tls",
                    "reload",
                    format!(
                        "listener {}: client CA/CRL reload refused, the previous ones stay: {e}",
                        self.listener
                    ),
                );
                Err(e)
            }
        }
    }

    /// Serves `key` (from the ACME manager) from the next handshake on. If the files
    /// cannot be read now, the ACME certificate is served alone until they can.
    pub fn set_acme(&self, key: Arc<CertifiedKey>) {
        *self.acme.lock().unwrap_or_else(|p| p.into_inner()) = Some(key.clone());
        if self.reload().is_err() {
            let mut store = CertStore::default();
            store.insert(key, &[]);
            self.resolver.replace(store);
        }
    }

    /// The certificates served now.
    pub fn keys(&self) -> Vec<Arc<CertifiedKey>> {
        self.resolver.current().keys()
    }

    /// Staples `response` to the certificate whose leaf is `leaf` (`None`: no staple).
    pub fn staple(&self, leaf: &[u8], response: Option<Vec<u8>>) {
        let mut staples = self.staples.lock().unwrap_or_else(|p| p.into_inner());
        match response {
            Some(r) => staples.insert(leaf.to_vec(), r),
            None => staples.remove(leaf),
        };
        let store = self.resolver.current().stapled(|l| staples.get(l).cloned());
        self.resolver.replace(store);
    }

    fn changed(&self) -> bool {
        let now = self.current_stamps();
        let last = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
        now != *last
    }
}

/// Build Pingora TLS settings for a listener; `acme` is the certificate its ACME manager
/// starts with (stored or placeholder).
pub fn settings(
    l: &Listener,
    acme: Option<Arc<CertifiedKey>>,
) -> Result<(TlsSettings, Arc<CertSet>), crate::Error> {
    let tls = l.tls.as_ref().ok_or(crate::Error::NotTls)?;
    let entries: Vec<CertEntry> = tls
        .certificates
        .iter()
        .map(|c| CertEntry {
            cert_path: c.cert.clone().into(),
            key_path: c.key.clone().into(),
            hosts: c.hosts.clone(),
        })
        .collect();
    let store =
        build_store(acme.as_ref(), &entries).map_err(|source| crate::Error::ListenerTls {
            listener: l.name.clone(),
            source,
        })?;
    let resolver = Arc::new(SniResolver::new(store));
    let mut s = TlsSettings::with_callbacks(Box::new(IdentityCapture)).map_err(|source| {
        crate::Error::ListenerTlsSettings {
            listener: l.name.clone(),
            source,
        }
    })?;
    s.set_cert_resolver(resolver.clone());
    let mut client_auth = None;
    if let Some(ca) = &tls.client_auth {
        let files = ClientAuthFiles {
            ca: PathBuf::from(&ca.ca),
            crl: ca.crl.as_ref().map(PathBuf::from),
            optional: ca.mode == ClientAuthMode::Optional,
            verifier: Arc::new(rampart_tls::SwappableVerifier::new(
                rampart_tls::client_verifier(
                    Path::new(&ca.ca),
                    ca.crl.as_deref().map(Path::new),
                    ca.mode == ClientAuthMode::Optional,
                )
                .map_err(|source| crate::Error::ListenerTls {
                    listener: l.name.clone(),
                    source,
                })?,
            )),
        };
        s.set_client_cert_verifier(files.verifier.clone());
        client_auth = Some(files);
    }
    s.enable_h2();
    let set = Arc::new(CertSet {
        listener: l.name.clone(),
        resolver,
        entries,
        stamps: Mutex::new(Vec::new()),
        acme: Mutex::new(acme),
        client_auth,
        staples: Mutex::new(HashMap::new()),
    });
    *set.stamps.lock().unwrap() = set.current_stamps();
    Ok((s, set))
}

/// Poll certificate files; rotate a listener's set when any of its files changed.
pub fn watch(sets: Vec<Arc<CertSet>>, interval: Duration) {
    if sets.is_empty() || interval.is_zero() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("rampart-cert-watch".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            for s in &sets {
                if s.changed() {
                    let _ = s.reload();
                }
            }
        });
}
