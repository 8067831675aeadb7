//! OCSP stapling (RFC 6960, RFC 6066 `status_request`): the request for a certificate
//! whose issuer names an OCSP responder, and the checks a response must pass before it is
//! stapled: successful, signed by the issuer (or a responder the issuer delegated to with
//! the OCSPSigning purpose), about this very certificate, `good`, and current. A staple
//! that fails them is never served: a client that checks staples would refuse the
//! handshake.

use der::{Decode, Encode};
use rustls::pki_types::CertificateDer;
use std::time::{Duration, SystemTime};
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    TbsRequest,
};

/// What to ask, and where.
#[derive(Debug, Clone)]
pub struct Query {
    /// The responder's URL (from the certificate's Authority Information Access).
    pub url: String,
    /// The DER `OCSPRequest` to POST (`application/ocsp-request`).
    pub request: Vec<u8>,
    cert_id: CertId,
    issuer: CertificateDer<'static>,
}

/// A response fit to staple.
#[derive(Debug, Clone)]
pub struct Staple {
    /// The DER `OCSPResponse`, as served in the handshake.
    pub der: Vec<u8>,
    /// `thisUpdate`.
    pub this_update: SystemTime,
    /// `nextUpdate` (absent: the responder promises nothing; refreshed like a short one).
    pub next_update: Option<SystemTime>,
}

impl Staple {
    /// When to fetch a new one: halfway through its validity (an hour when it gives no
    /// `nextUpdate`), never sooner than a minute from now.
    pub fn refresh_at(&self, now: SystemTime) -> SystemTime {
        let half = match self.next_update {
            Some(n) => n.duration_since(self.this_update).unwrap_or_default() / 2,
            None => Duration::from_secs(3600),
        };
        (self.this_update + half).max(now + Duration::from_secs(60))
    }

    /// Still true at `now`.
    pub fn valid_at(&self, now: SystemTime) -> bool {
        self.next_update.is_none_or(|n| now < n)
    }
}

const OCSP_ACCESS: &str = "1.3.6.1.5.5.7.48.1";
const OCSP_SIGNING: &str = "1.3.6.1.5.5.7.3.9";

/// The query for `chain`'s leaf, when its issuer (the chain's second certificate) names an
/// OCSP responder over http(s); `None` when it does not.
pub fn query(chain: &[CertificateDer<'static>]) -> Option<Result<Query, String>> {
    let leaf = chain.first()?;
    let issuer = chain.get(1)?;
    let (_, x) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let url = x
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityInfoAccess(aia) => {
                aia.accessdescs.iter().find_map(|d| {
                    match (&d.access_method.to_id_string()[..], &d.access_location) {
                        (OCSP_ACCESS, x509_parser::extensions::GeneralName::URI(u))
                            if u.starts_with("http://") || u.starts_with("https://") =>
                        {
                            Some(u.to_string())
                        }
                        _ => None,
                    }
                })
            }
            _ => None,
        })?;
    Some(build(leaf, issuer, url))
}

fn build(
    leaf: &CertificateDer<'static>,
    issuer: &CertificateDer<'static>,
    url: String,
) -> Result<Query, String> {
    let leaf_c = x509_cert::Certificate::from_der(leaf.as_ref()).map_err(|e| e.to_string())?;
    let issuer_c = x509_cert::Certificate::from_der(issuer.as_ref()).map_err(|e| e.to_string())?;
    // SHA-1 CertIDs: what RFC 5019 responders (every public CA's) are required to accept.
    let cert_id = CertId::from_cert::<sha1::Sha1>(&issuer_c, &leaf_c).map_err(|e| e.to_string())?;
    let req = OcspRequest {
        tbs_request: TbsRequest {
            request_list: vec![Request::new(cert_id.clone())],
            ..Default::default()
        },
        optional_signature: None,
    };
    Ok(Query {
        url,
        request: req.to_der().map_err(|e| e.to_string())?,
        cert_id,
        issuer: issuer.clone(),
    })
}

fn time(t: &x509_ocsp::OcspGeneralizedTime) -> SystemTime {
    t.0.to_system_time()
}

/// Checks a responder's answer to `q` at `now`.
pub fn check(q: &Query, response: &[u8], now: SystemTime) -> Result<Staple, String> {
    let r = OcspResponse::from_der(response).map_err(|e| format!("not an OCSP response: {e}"))?;
    if r.response_status != OcspResponseStatus::Successful {
        return Err(format!("responder answered {:?}", r.response_status));
    }
    let bytes = r
        .response_bytes
        .ok_or("a successful response without a body")?;
    if bytes.response_type.to_string() != "1.3.6.1.5.5.7.48.1.1" {
        return Err("not a basic OCSP response".into());
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())
        .map_err(|e| format!("bad basic response: {e}"))?;
    let (_, issuer) =
        x509_parser::parse_x509_certificate(q.issuer.as_ref()).map_err(|e| e.to_string())?;
    // The signer: the issuer itself, or a certificate it issued for OCSP signing.
    let signer_spki = match basic.certs.as_deref().and_then(|c| c.first()) {
        None => issuer.public_key().raw.to_vec(),
        Some(delegate) => {
            let der = delegate.to_der().map_err(|e| e.to_string())?;
            let (_, d) = x509_parser::parse_x509_certificate(&der).map_err(|e| e.to_string())?;
            if d.tbs_certificate.subject == issuer.tbs_certificate.subject
                && d.public_key().raw == issuer.public_key().raw
            {
                d.public_key().raw.to_vec()
            } else {
                d.verify_signature(Some(issuer.public_key()))
                    .map_err(|_| "the responder's certificate is not the issuer's")?;
                let ocsp_signing = d.extended_key_usage().ok().flatten().is_some_and(|e| {
                    e.value
                        .other
                        .iter()
                        .any(|o| o.to_id_string() == OCSP_SIGNING)
                        || e.value.ocsp_signing
                });
                if !ocsp_signing {
                    return Err("the responder's certificate is not for OCSP signing".into());
                }
                d.public_key().raw.to_vec()
            }
        }
    };
    let tbs = basic
        .tbs_response_data
        .to_der()
        .map_err(|e| e.to_string())?;
    verify(
        &signer_spki,
        &basic.signature_algorithm.oid.to_string(),
        &tbs,
        basic.signature.raw_bytes(),
    )?;
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|s| s.cert_id == q.cert_id)
        .ok_or("the response is about another certificate")?;
    match &single.cert_status {
        CertStatus::Good(_) => {}
        CertStatus::Revoked(_) => return Err("the certificate is revoked".into()),
        CertStatus::Unknown(_) => return Err("the responder does not know the certificate".into()),
    }
    let this_update = time(&single.this_update);
    // A little clock skew either way.
    if this_update > now + Duration::from_secs(300) {
        return Err("the response is from the future".into());
    }
    let next_update = single.next_update.as_ref().map(time);
    if next_update.is_some_and(|n| n <= now) {
        return Err("the response has expired".into());
    }
    Ok(Staple {
        der: response.to_vec(),
        this_update,
        next_update,
    })
}

/// Verifies `sig` over `msg` with a DER SubjectPublicKeyInfo, for the algorithms OCSP
/// responders use (ECDSA P-256/P-384, RSA PKCS#1 v1.5 with SHA-2).
fn verify(spki: &[u8], alg: &str, msg: &[u8], sig: &[u8]) -> Result<(), String> {
    use ring::signature as s;
    let (_, info): (_, x509_parser::x509::SubjectPublicKeyInfo) =
        x509_parser::prelude::FromDer::from_der(spki)
            .map_err(|e| format!("bad responder key: {e}"))?;
    let key = info.subject_public_key.data.as_ref();
    let curve = info
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let algorithm: &dyn s::VerificationAlgorithm = match (alg, curve.as_deref()) {
        ("1.2.840.10045.4.3.2", Some("1.2.840.10045.3.1.7")) => &s::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", Some("1.2.840.10045.3.1.7")) => &s::ECDSA_P256_SHA384_ASN1,
        ("1.2.840.10045.4.3.2", Some("1.3.132.0.34")) => &s::ECDSA_P384_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", Some("1.3.132.0.34")) => &s::ECDSA_P384_SHA384_ASN1,
        ("1.2.840.113549.1.1.11", _) => &s::RSA_PKCS1_2048_8192_SHA256,
        ("1.2.840.113549.1.1.12", _) => &s::RSA_PKCS1_2048_8192_SHA384,
        ("1.2.840.113549.1.1.13", _) => &s::RSA_PKCS1_2048_8192_SHA512,
        _ => return Err(format!("unsupported signature algorithm {alg}")),
    };
    s::UnparsedPublicKey::new(algorithm, key)
        .verify(msg, sig)
        .map_err(|_| "the response's signature does not verify".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staples_are_refreshed_halfway_and_never_served_stale() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let day = Duration::from_secs(86400);
        let s = Staple {
            der: Vec::new(),
            this_update: t0,
            next_update: Some(t0 + 4 * day),
        };
        assert_eq!(s.refresh_at(t0), t0 + 2 * day);
        // Late already: soon, but not in a loop.
        assert_eq!(
            s.refresh_at(t0 + 3 * day),
            t0 + 3 * day + Duration::from_secs(60)
        );
        assert!(s.valid_at(t0 + 4 * day - Duration::from_secs(1)));
        assert!(!s.valid_at(t0 + 4 * day));
        let open = Staple {
            next_update: None,
            ..s
        };
        assert_eq!(open.refresh_at(t0), t0 + Duration::from_secs(3600));
    }

    #[test]
    fn certificates_without_a_responder_have_no_query_and_junk_is_refused() {
        let k = rcgen::KeyPair::generate().unwrap();
        let c = rcgen::CertificateParams::new(vec!["a.test".to_string()])
            .unwrap()
            .self_signed(&k)
            .unwrap();
        let chain = vec![c.der().clone(), c.der().clone()];
        assert!(query(&chain).is_none());
        assert!(query(&chain[..1]).is_none());
        assert!(query(&[]).is_none());
        let q = build(&chain[0], &chain[1], "http://ocsp.test".into()).unwrap();
        for junk in [
            &b""[..],
            b"\x30\x03\x0a\x01\x00",
            b"\x30\x03\x0a\x01\x06",
            &[0xffu8; 64],
        ] {
            assert!(check(&q, junk, SystemTime::now()).is_err());
        }
    }
}
