//! `docs`: a route with `docs` answers with its API's documentation itself — the page, its
//! script and style (built into the binary: nothing from a CDN) and the published
//! description — after authentication and authorization ran like on any route.

use super::{reject, Decision, Req, Served};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;
use bytes::Bytes;

const PAGE: &str = include_str!("../docs/index.html");
const SCRIPT: &str = include_str!("../docs/docs.js");
const STYLE: &str = include_str!("../docs/docs.css");

/// The page loads only its own script, style and description.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(super) fn run(r: &Req, _: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(docs) = ctx.route.as_ref().and_then(|r| r.docs.clone()) else {
        return Decision::Continue;
    };
    let method = &r.head.method;
    if method != http::Method::GET && method != http::Method::HEAD {
        let mut d = reject(405, "method not allowed", "docs are read-only");
        if let Decision::Respond(rej) = &mut d {
            rej.headers.push(("Allow", "GET, HEAD".into()));
        }
        return d;
    }
    let base = ctx.prefix.trim_end_matches('/');
    let rest = ctx.path.strip_prefix(base).unwrap_or("");
    let served = |content_type: &'static str, body: Bytes| {
        Decision::Serve(Served {
            status: 200,
            content_type,
            body,
            headers: vec![
                ("Content-Security-Policy", CSP.into()),
                ("X-Content-Type-Options", "nosniff".into()),
                ("Cache-Control", "no-store".into()),
            ],
            refusal: None,
        })
    };
    match rest {
        // Relative asset URLs need the trailing slash.
        "" => Decision::Serve(Served {
            status: 308,
            content_type: "text/plain; charset=utf-8",
            body: Bytes::new(),
            headers: vec![("Location", format!("{base}/"))],
            refusal: None,
        }),
        "/" | "/index.html" => served(
            "text/html; charset=utf-8",
            Bytes::from_static(PAGE.as_bytes()),
        ),
        "/docs.js" => served(
            "text/javascript; charset=utf-8",
            Bytes::from_static(SCRIPT.as_bytes()),
        ),
        "/docs.css" => served(
            "text/css; charset=utf-8",
            Bytes::from_static(STYLE.as_bytes()),
        ),
        "/openapi.json" if docs.cfg.by_groups => {
            let groups = ctx
                .auth
                .principal
                .as_ref()
                .map(|p| p.groups.clone())
                .unwrap_or_default();
            let doc = rampart_openapi::for_groups(&docs.value, &groups);
            served("application/json", Bytes::from(doc.to_string()))
        }
        "/openapi.json" => served("application/json", docs.json.clone()),
        _ => reject(404, "not found", "no such documentation page"),
    }
}
