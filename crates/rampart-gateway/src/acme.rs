//! ACME in the gateway: one `rampart_acme::Manager` per TLS listener with `tls.acme`, whose
//! certificates go into the listener's `CertSet`; the HTTP-01 answers served by the
//! `acme_challenge` stage, the TLS-ALPN-01 answers by the pre-TLS hook (a `acme-tls/1`
//! handshake is completed here and closed, never handed to the HTTP server).

use crate::metrics::metrics;
use crate::observe::system_event;
use crate::tls::CertSet;
use pingora::protocols::l4::stream::Stream as L4Stream;
use rampart_acme::{Answers, ChallengeKind, Manager, Observer, Settings};
use rampart_config::{AcmeChallenge, Listener};
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// How long renewals wait at start for the listeners to accept connections.
const LISTENERS_UP: Duration = Duration::from_secs(2);

static ANSWERS: OnceLock<Arc<Answers>> = OnceLock::new();

/// The process's pending challenge answers; `None` when no listener uses ACME.
pub(crate) fn answers() -> Option<&'static Arc<Answers>> {
    ANSWERS.get()
}

/// A listener's manager, its certificate installed into the listener's set once that exists.
pub(crate) struct Pending {
    manager: Arc<Manager>,
    observer: Arc<ToCertSet>,
}

/// Where a manager's decisions go: the listener's certificates, events and metrics.
struct ToCertSet {
    listener: String,
    set: OnceLock<Arc<CertSet>>,
}

impl Observer for ToCertSet {
    fn install(&self, key: Arc<CertifiedKey>) {
        if let Some(set) = self.set.get() {
            set.set_acme(key);
        }
    }

    fn event(&self, action: &str, detail: String) {
        metrics()
            .acme_events
            .with_label_values(&[self.listener.as_str(), action])
            .inc();
        system_event("acme", action, detail);
    }

    fn expires(&self, not_after: Option<SystemTime>) {
        let mut m = metrics()
            .acme_expiry
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match m.iter_mut().find(|(l, _)| *l == self.listener) {
            Some(e) => e.1 = not_after,
            None => m.push((self.listener.clone(), not_after)),
        }
    }
}

/// The manager for `l` (which has `tls.acme`) and the certificate to start with: the stored
/// one, or a placeholder. Must run on the background runtime (Redis handles are made here).
pub(crate) fn prepare(l: &Listener) -> Result<Option<(Pending, Arc<CertifiedKey>)>, crate::Error> {
    let Some(a) = l.tls.as_ref().and_then(|t| t.acme.as_ref()) else {
        return Ok(None);
    };
    let fail = |m: String| crate::Error::ListenerTls {
        listener: l.name.clone(),
        source: rampart_tls::TlsError(format!("acme: {m}")),
    };
    let answers = ANSWERS.get_or_init(Default::default).clone();
    let shared = match &a.redis {
        Some(url) => {
            let h = rampart_redis::RedisHandle::new(url, "acme", Duration::from_secs(2))
                .map_err(|e| fail(e.to_string()))?;
            let s = Arc::new(rampart_acme::Shared::new(Arc::new(h)));
            answers.share(s.clone());
            Some(s)
        }
        None => None,
    };
    let settings = Settings {
        name: l.name.clone(),
        directory: a.directory.clone(),
        email: a.email.clone(),
        domains: a.domains.clone(),
        challenge: match a.challenge {
            AcmeChallenge::Http01 => ChallengeKind::Http01,
            AcmeChallenge::TlsAlpn01 => ChallengeKind::TlsAlpn01,
        },
        storage: a.storage.clone().into(),
        renew_before: a.renew_before.0,
        ca: a.ca.as_ref().map(|c| Path::new(c).to_path_buf()),
        eab: match &a.eab {
            Some(e) => Some((
                e.kid.clone(),
                rampart_config::acme_eab_key(&e.hmac_key)
                    .ok_or_else(|| fail("eab.hmac_key is not base64url".into()))?,
            )),
            None => None,
        },
        retry_initial: a.retry_initial.0,
        retry_max: a.retry_max.0,
        timeout: a.timeout.0,
    };
    let observer = Arc::new(ToCertSet {
        listener: l.name.clone(),
        set: OnceLock::new(),
    });
    let manager = Manager::new(settings, answers, shared, observer.clone()).map_err(fail)?;
    let first = manager.initial().map_err(fail)?;
    Ok(Some((
        Pending {
            manager: Arc::new(manager),
            observer,
        },
        first,
    )))
}

impl Pending {
    /// Renewals start; what they install goes into `set`.
    pub(crate) fn start(self, set: Arc<CertSet>, rt: &tokio::runtime::Handle) {
        let _ = self.observer.set.set(set);
        let manager = self.manager;
        rt.spawn(async move {
            // The listeners that answer the challenges start listening after this.
            tokio::time::sleep(LISTENERS_UP).await;
            manager.run().await
        });
    }
}

/// `acme_challenge`: on a plain listener, `GET /.well-known/acme-challenge/<token>` for a
/// pending HTTP-01 challenge (of this node or, through Redis, another) is answered with its
/// key authorization, before any redirect, authentication or route. Anything else under
/// that path goes through the pipeline like any request.
pub(crate) async fn answer_http01(
    r: &crate::stages::Req<'_>,
    ctx: &crate::ctx::Ctx,
) -> Option<crate::stages::Served> {
    let answers = answers()?;
    // RFC 8555 8.3: the CA validates with GET.
    if ctx.tls || r.head.method != http::Method::GET {
        return None;
    }
    let token = r
        .head
        .uri
        .path()
        .strip_prefix("/.well-known/acme-challenge/")?;
    if r.head.uri.query().is_some() {
        return None;
    }
    let key_auth = answers.http01(token).await?;
    Some(crate::stages::Served {
        status: 200,
        content_type: "application/octet-stream",
        body: bytes::Bytes::from(key_auth),
        headers: Vec::new(),
        refusal: None,
    })
}

/// A `acme-tls/1` hello (RFC 8737: the validator offers that protocol alone) for a name
/// with a pending TLS-ALPN-01 challenge is answered here: the handshake is completed with
/// the challenge certificate and the connection closed. `None`: not such a hello.
pub(crate) async fn answer_tls_alpn(
    stream: &mut L4Stream,
    hello: &rampart_bots::tls::ClientHello,
) -> Option<pingora::Result<()>> {
    if hello.alpn.len() != 1 || hello.alpn[0] != rampart_acme::ACME_TLS_ALPN {
        return None;
    }
    let closed = |why: &'static str| {
        Some(pingora::Error::e_explain(
            pingora::ErrorType::ConnectionClosed,
            why,
        ))
    };
    let Some(answers) = answers() else {
        return closed("acme-tls/1 offered, but no listener uses ACME");
    };
    let Some(sni) = hello.sni.as_deref() else {
        return closed("acme-tls/1 offered without a server name");
    };
    let Some(ck) = answers.tls_alpn01(sni).await else {
        return closed("acme-tls/1 offered for a name without a pending challenge");
    };
    let mut cfg = match rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    {
        Ok(b) => b
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Only(ck))),
        Err(_) => return closed("acme-tls/1: no TLS configuration"),
    };
    cfg.alpn_protocols = vec![rampart_acme::ACME_TLS_ALPN.to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let done = tokio::time::timeout(Duration::from_secs(10), async {
        let mut tls = acceptor.accept(&mut *stream).await?;
        tokio::io::AsyncWriteExt::shutdown(&mut tls).await
    })
    .await;
    match done {
        Ok(Ok(())) => closed("acme-tls/1 challenge answered"),
        _ => closed("acme-tls/1 handshake failed"),
    }
}

/// A resolver with one certificate.
#[derive(Debug)]
struct Only(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for Only {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}
