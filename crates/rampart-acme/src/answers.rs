//! The answers to pending challenges, which the gateway serves: the key authorization at
//! `/.well-known/acme-challenge/<token>` (HTTP-01), and a self-signed certificate carrying
//! the key authorization's digest for a `acme-tls/1` handshake (TLS-ALPN-01, RFC 8737).
//! With a shared Redis, an answer one node registers is served by every node.

use crate::shared::Shared;
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The ALPN protocol of TLS-ALPN-01 validation connections.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Pending challenge answers, process-wide.
#[derive(Default)]
pub struct Answers {
    http: Mutex<HashMap<String, String>>,
    alpn: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    shared: OnceLock<Arc<Shared>>,
}

/// A token as ACME servers make them (base64url, RFC 8555 8.1); anything else is never
/// looked up, so junk requests cost no Redis round trip.
fn plausible_token(t: &str) -> bool {
    (16..=128).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Answers {
    /// Answers from other nodes are read from `shared` too (the first one set stays).
    pub fn share(&self, shared: Arc<Shared>) {
        let _ = self.shared.set(shared);
    }

    /// The key authorization for an HTTP-01 token, registered on this node or another.
    pub async fn http01(&self, token: &str) -> Option<String> {
        if !plausible_token(token) {
            return None;
        }
        let local = self
            .http
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned();
        if local.is_some() {
            return local;
        }
        self.shared.get()?.http01(token).await
    }

    /// The TLS-ALPN-01 certificate for `domain`, registered on this node or another.
    pub async fn tls_alpn01(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        let domain = domain.to_ascii_lowercase();
        let local = self
            .alpn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&domain)
            .cloned();
        if local.is_some() {
            return local;
        }
        let digest = self.shared.get()?.tls_alpn01(&domain).await?;
        alpn_certificate(&domain, &digest).ok().map(Arc::new)
    }

    pub(crate) async fn put_http01(&self, token: &str, key_auth: &str) {
        self.http
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_string(), key_auth.to_string());
        if let Some(s) = self.shared.get() {
            s.put_http01(token, key_auth).await;
        }
    }

    pub(crate) async fn put_tls_alpn01(&self, domain: &str, digest: &[u8]) -> Result<(), String> {
        let domain = domain.to_ascii_lowercase();
        let ck = alpn_certificate(&domain, digest)?;
        self.alpn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain.clone(), Arc::new(ck));
        if let Some(s) = self.shared.get() {
            s.put_tls_alpn01(&domain, digest).await;
        }
        Ok(())
    }

    pub(crate) fn forget(&self, tokens: &[String], domains: &[String]) {
        let mut h = self.http.lock().unwrap_or_else(|p| p.into_inner());
        for t in tokens {
            h.remove(t);
        }
        drop(h);
        let mut a = self.alpn.lock().unwrap_or_else(|p| p.into_inner());
        for d in domains {
            a.remove(&d.to_ascii_lowercase());
        }
    }
}

/// RFC 8737 3: a self-signed certificate for `domain` alone, with the critical
/// `id-pe-acmeIdentifier` extension holding SHA-256 of the key authorization.
pub fn alpn_certificate(domain: &str, digest: &[u8]) -> Result<CertifiedKey, String> {
    if digest.len() != 32 {
        return Err("the key authorization digest is not SHA-256".into());
    }
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut p =
        rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(|e| e.to_string())?;
    p.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = p.self_signed(&key).map_err(|e| e.to_string())?;
    // Not through `keys_match`: webpki refuses to parse a certificate with a critical
    // extension it does not know, which acmeIdentifier must be. The key is the one just
    // made for this certificate.
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| e.to_string())?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_are_served_until_forgotten() {
        let a = Answers::default();
        let token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";
        assert_eq!(a.http01(token).await, None);
        a.put_http01(token, "evaG.key").await;
        assert_eq!(a.http01(token).await.as_deref(), Some("evaG.key"));
        // Not a token: never looked up.
        for junk in [
            "",
            "../etc/passwd",
            "short",
            &"a".repeat(200),
            "tok%2Fen-0123456789",
        ] {
            assert_eq!(a.http01(junk).await, None, "{junk}");
        }
        a.put_tls_alpn01("Shop.Example.test", &[7u8; 32])
            .await
            .unwrap();
        let ck = a.tls_alpn01("shop.example.TEST").await.unwrap();
        let (_, x) = x509_parser::parse_x509_certificate(ck.cert[0].as_ref()).unwrap();
        let ext = x
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier");
        assert!(ext.critical);
        // An OCTET STRING of the 32-byte digest.
        assert_eq!(&ext.value[..2], &[0x04, 32]);
        assert_eq!(&ext.value[2..], &[7u8; 32]);
        assert!(a.put_tls_alpn01("x.test", &[1u8; 20]).await.is_err());

        a.forget(&[token.to_string()], &["shop.example.test".to_string()]);
        assert_eq!(a.http01(token).await, None);
        assert!(a.tls_alpn01("shop.example.test").await.is_none());
    }
}
