//! `challenge_answer` and `challenge`: the browser challenge (`rampart-bots`). On a route
//! with `challenge: true` (or whose bot policy says `challenge` for the verdict), a request without a valid pass cookie is refused: a browser (HTML
//! `Accept`) gets the challenge page, whose script solves the puzzle and calls
//! `/.rampart-challenge/verify`, which sets the pass and redirects back; any other client
//! gets a JSON 403. The answer endpoint runs before routing (it belongs to no route) and
//! exists only while some route uses the challenge.

use super::{reject, Decision, Req, Served};
use crate::ctx::Ctx;
use crate::hygiene::query_param;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use rampart_bots::challenge::{self, Client, Keys, Refusal};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

const PREFIX: &str = "/.rampart-challenge/";
/// The page runs its one script and nothing else.
const CSP: &str = "default-src 'none'; script-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The snapshot's keys: `None` when no route uses the challenge. Without configured
/// secrets the process's own random key, kept across reloads so passes survive them.
pub(crate) fn keys(config: &rampart_config::Config) -> Option<Arc<Keys>> {
    if !super::bots::uses_challenge(config) {
        return None;
    }
    let secrets = &config.bots.challenge.secrets;
    if secrets.is_empty() {
        static RANDOM: OnceLock<Arc<Keys>> = OnceLock::new();
        return Some(RANDOM.get_or_init(|| Arc::new(Keys::random())).clone());
    }
    let secrets: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).collect();
    Some(Arc::new(Keys::new(&secrets)))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn client(r: &Req, ctx: &Ctx) -> Option<Client> {
    let ip = ctx.client_ip?;
    let ua = r
        .head
        .headers
        .get(http::header::USER_AGENT)
        .map_or(&b""[..], |v| v.as_bytes());
    Some(Client::new(ip, ua))
}

/// `__Host-` (Secure, whole host, path `/`) where the browser allows it: over TLS.
fn cookie_name(ctx: &Ctx) -> &'static str {
    if ctx.tls {
        "__Host-rampart_pass"
    } else {
        "rampart_pass"
    }
}

fn pass_cookie<'a>(r: &'a Req, name: &str) -> Option<&'a str> {
    r.head
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

fn wants_html(r: &Req) -> bool {
    r.head
        .headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"))
}

/// Where the answer sends the browser back: a path on this site, or `/`.
fn safe_return(r: &str) -> &str {
    let ok = r.starts_with('/')
        && !r.starts_with("//")
        && !r.starts_with("/\\")
        && r.len() <= 2048
        && !r.bytes().any(|b| b < 0x20 || b == 0x7f);
    if ok {
        r
    } else {
        "/"
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn served(status: u16, content_type: &'static str, body: Bytes) -> Served {
    Served {
        status,
        content_type,
        body,
        headers: vec![
            ("Content-Security-Policy", CSP.into()),
            ("Cache-Control", "no-store".into()),
            ("X-Frame-Options", "DENY".into()),
            ("Referrer-Policy", "no-referrer".into()),
        ],
        refusal: None,
    }
}

/// `/.rampart-challenge/solver.js` and `/.rampart-challenge/verify?c=&n=&r=`.
pub(super) fn answer(r: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(keys) = snap.challenge.as_ref() else {
        return Decision::Continue;
    };
    let Some(rest) = ctx.path.strip_prefix(PREFIX) else {
        return Decision::Continue;
    };
    let method = &r.head.method;
    if method != http::Method::GET && method != http::Method::HEAD {
        return reject(
            405,
            "method not allowed",
            "challenge endpoints are GET only",
        );
    }
    match rest {
        "solver.js" => Decision::Serve(served(
            200,
            "text/javascript; charset=utf-8",
            Bytes::from_static(rampart_bots::SOLVER_JS.as_bytes()),
        )),
        "verify" => {
            let query = r.head.uri.query().unwrap_or("");
            let (Some(c), Some(n)) = (query_param(query, "c"), query_param(query, "n")) else {
                return reject(
                    400,
                    "challenge answer incomplete",
                    "malformed challenge answer",
                );
            };
            let back = query_param(query, "r").unwrap_or_else(|| "/".into());
            let Some(who) = client(r, ctx) else {
                return reject(403, "challenge failed", "no client address");
            };
            let cfg = &snap.config.bots.challenge;
            let at = now();
            match challenge::check_answer(keys, &who, &c, &n, at, cfg.max_solve_time.0.as_secs()) {
                Ok(()) => {
                    let ttl = cfg.ttl.0.as_secs();
                    let pass = challenge::pass(keys, &who, at, ttl);
                    let secure = if ctx.tls { "; Secure" } else { "" };
                    let mut s = served(303, "text/plain; charset=utf-8", Bytes::new());
                    s.headers.push(("Location", safe_return(&back).to_string()));
                    s.headers.push((
                        "Set-Cookie",
                        format!(
                            "{}={pass}; Path=/; Max-Age={ttl}; HttpOnly; SameSite=Lax{secure}",
                            cookie_name(ctx)
                        ),
                    ));
                    Decision::Serve(s)
                }
                Err(why) => reject(403, "challenge failed", refusal_reason("answer", why)),
            }
        }
        _ => reject(404, "not found", "no such challenge endpoint"),
    }
}

fn refusal_reason(what: &str, why: Refusal) -> &'static str {
    match (what, why) {
        ("answer", Refusal::Malformed) => "malformed challenge answer",
        ("answer", Refusal::BadSignature) => "challenge not issued to this client",
        ("answer", Refusal::Expired) => "challenge expired",
        ("answer", Refusal::NotSolved) => "challenge not solved",
        (_, Refusal::Malformed) => "malformed challenge pass",
        (_, Refusal::BadSignature) => "challenge pass not issued to this client",
        (_, Refusal::Expired) => "challenge pass expired",
        (_, Refusal::NotSolved) => "challenge pass invalid",
    }
}

/// Whether the request's pass cookie is valid; `None` without one (or without keys).
pub(super) fn pass_valid(r: &Req, snap: &Snapshot, ctx: &Ctx) -> Option<bool> {
    let keys = snap.challenge.as_ref()?;
    let pass = pass_cookie(r, cookie_name(ctx))?;
    let who = client(r, ctx)?;
    Some(challenge::check_pass(keys, &who, pass, now()).is_ok())
}

/// A route with `challenge: true`: a valid pass, or the challenge.
pub(super) fn run(r: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let route_asks = ctx.route.as_ref().is_some_and(|rt| rt.spec.challenge);
    if !route_asks && !ctx.bot_challenge {
        return Decision::Continue;
    }
    // Keys exist whenever a route asks for the challenge; refuse rather than pass if not.
    let Some(keys) = snap.challenge.as_ref() else {
        return reject(503, "challenge unavailable", "no challenge keys");
    };
    let Some(who) = client(r, ctx) else {
        return reject(403, "challenge required", "no client address");
    };
    let at = now();
    let reason = match pass_cookie(r, cookie_name(ctx)) {
        Some(p) => match challenge::check_pass(keys, &who, p, at) {
            Ok(()) => return Decision::Continue,
            Err(why) => refusal_reason("pass", why),
        },
        None => "no challenge pass",
    };
    if !wants_html(r) {
        return reject(
            403,
            "this route needs a browser that passes Rampart's challenge",
            reason,
        );
    }
    let difficulty = snap.config.bots.challenge.difficulty;
    let c = challenge::issue(keys, &who, difficulty, at);
    let back = r.head.uri.path_and_query().map_or("/", |p| p.as_str());
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Checking your browser</title>\
         <script src=\"{PREFIX}solver.js\" defer></script></head>\
         <body><main id=\"challenge\" data-challenge=\"{}\" data-difficulty=\"{difficulty}\" data-return=\"{}\">\
         <h1>Checking your browser</h1><p id=\"progress\">Working…</p>\
         <noscript><p>This site needs JavaScript to let you in.</p></noscript></main></body></html>\n",
        html_escape(&c),
        html_escape(safe_return(back)),
    );
    let mut s = served(403, "text/html; charset=utf-8", Bytes::from(page));
    s.refusal = Some(reason);
    Decision::Serve(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_paths_stay_on_this_site() {
        assert_eq!(safe_return("/shop?a=1"), "/shop?a=1");
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "",
            "x",
            "/a\nb",
        ] {
            assert_eq!(safe_return(bad), "/", "{bad:?}");
        }
        assert_eq!(
            html_escape("/a?\"><script>x</script>&'"),
            "/a?&quot;&gt;&lt;script&gt;x&lt;/script&gt;&amp;&#39;"
        );
    }
}
