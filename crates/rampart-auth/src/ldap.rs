//! LDAP authentication: a simple bind as the user (over LDAPS or StartTLS when configured),
//! then a group search. User input is escaped for DNs (RFC 4514) and filters (RFC 4515) so
//! it cannot change the query. Successful results are cached briefly.

use crate::{secrets, Error};
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use rampart_config::Ldap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Binds as users against the directory, with a short cache of successful binds.
pub struct LdapAuth {
    cfg: Ldap,
    tls: Option<Arc<rustls::ClientConfig>>,
    cache: Mutex<HashMap<[u8; 32], BindResult>>,
}

/// When the bind succeeded, and the groups found then.
type BindResult = (Instant, Vec<String>);

impl LdapAuth {
    /// Checks the URL and `bind_dn` and loads the CA; connects only per authentication.
    pub fn new(cfg: &Ldap) -> Result<LdapAuth, Error> {
        if !(cfg.url.starts_with("ldap://") || cfg.url.starts_with("ldaps://")) {
            return Err(Error::LdapUrl {
                url: cfg.url.clone(),
            });
        }
        if !cfg.bind_dn.contains("{user}") {
            return Err(Error::LdapBindDn);
        }
        let tls = match &cfg.ca {
            Some(ca) => {
                let pem = std::fs::read(ca).map_err(|source| Error::Read {
                    path: ca.clone(),
                    source,
                })?;
                let mut roots = rustls::RootCertStore::empty();
                for c in rustls_pemfile::certs(&mut pem.as_slice()) {
                    let c = c.map_err(|source| Error::CaPem {
                        path: ca.clone(),
                        source,
                    })?;
                    roots.add(c).map_err(|source| Error::CaCertificate {
                        path: ca.clone(),
                        source,
                    })?;
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                Some(Arc::new(
                    rustls::ClientConfig::builder_with_provider(provider)
                        .with_safe_default_protocol_versions()
                        .map_err(Error::Tls)?
                        .with_root_certificates(roots)
                        .with_no_client_auth(),
                ))
            }
            None => None,
        };
        Ok(LdapAuth {
            cfg: cfg.clone(),
            tls,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Groups of `user` if `password` binds; Err(reason) otherwise.
    pub async fn authenticate(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Vec<String>, &'static str> {
        // An empty password is an "unauthenticated bind" that many servers accept (RFC
        // 4513 §5.1.2): never treat it as a credential.
        if user.is_empty() || password.is_empty() {
            return Err("empty ldap credentials");
        }
        let key = secrets::sha256(format!("{user}\0{password}").as_bytes());
        {
            let c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((t, groups)) = c.get(&key) {
                if t.elapsed() < self.cfg.cache_ttl.0 {
                    return Ok(groups.clone());
                }
            }
        }
        let groups = tokio::time::timeout(self.cfg.timeout.0, self.bind_and_search(user, password))
            .await
            .map_err(|_| "ldap timeout")??;
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() > 10_000 {
            let ttl = self.cfg.cache_ttl.0;
            c.retain(|_, (t, _)| t.elapsed() < ttl);
        }
        c.insert(key, (Instant::now(), groups.clone()));
        Ok(groups)
    }

    async fn bind_and_search(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Vec<String>, &'static str> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.cfg.timeout.0)
            .set_starttls(self.cfg.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.cfg.url)
            .await
            .map_err(|_| "ldap unreachable")?;
        ldap3::drive!(conn);
        let dn = self.cfg.bind_dn.replace("{user}", &ldap3::dn_escape(user));
        let bound = ldap
            .simple_bind(&dn, password)
            .await
            .map_err(|_| "ldap error")?
            .success();
        if bound.is_err() {
            let _ = ldap.unbind().await;
            return Err("ldap bind refused");
        }
        let mut groups = Vec::new();
        if let Some(base) = &self.cfg.group_base {
            let filter = self
                .cfg
                .group_filter
                .replace("{dn}", &ldap3::ldap_escape(&dn))
                .replace("{user}", &ldap3::ldap_escape(user));
            let found = ldap
                .search(
                    base,
                    Scope::Subtree,
                    &filter,
                    vec![self.cfg.group_attr.as_str()],
                )
                .await
                .map_err(|_| "ldap group search failed")?
                .success()
                .map_err(|_| "ldap group search failed")?;
            for entry in found.0 {
                let e = SearchEntry::construct(entry);
                if let Some(vals) = e.attrs.get(&self.cfg.group_attr) {
                    groups.extend(vals.iter().cloned());
                }
            }
        }
        let _ = ldap.unbind().await;
        Ok(groups)
    }
}
