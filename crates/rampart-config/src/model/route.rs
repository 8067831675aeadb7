//! Routes: what they match and what each one applies.

use super::*;
use crate::units::{ByteSize, HumanDuration};
use serde::Deserialize;

/// One route: which requests it matches (host, path, method) and what applies to them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Route {
    /// Unique name, used in logs, metrics and events.
    pub name: String,
    /// Host names (`api.example.test`, or `*.example.test` for one more label); empty = any host.
    /// An exact host beats a wildcard, which beats no `hosts`.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Path prefixes matched on segment boundaries (the longest wins), or `=/exact` paths;
    /// written in canonical form.
    pub paths: Vec<String>,
    /// Upper-case methods allowed (`GET`, `POST`, ...); empty = any. Others get 405.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Name of the upstream (under `upstreams`) requests are sent to (not needed by a route
    /// that only serves `docs`).
    #[serde(default)]
    pub upstream: String,
    /// Remove the matched path prefix before forwarding (`/api/x` via `/api` becomes `/x`); not
    /// with `=` paths.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Only clients that presented a verified certificate (mTLS) may use this route.
    #[serde(default)]
    pub require_client_cert: bool,
    /// Which client networks may use this route (`network.lists` names).
    #[serde(default)]
    pub network: Option<NetworkPolicy>,
    /// Who may call: the credentials this route accepts.
    #[serde(default)]
    pub auth: Option<RouteAuth>,
    /// What authenticated callers may do here (needs `auth`).
    #[serde(default)]
    pub authorize: Option<Authorize>,
    /// Limits for this route; absent = the top-level `rate_limit`; `[]` = none.
    #[serde(default)]
    pub rate_limit: Option<Vec<RateLimit>>,
    /// Limit on requests in flight on this route.
    #[serde(default)]
    pub concurrency: Option<Concurrency>,
    /// This route's WAF settings (needs a top-level `waf`).
    #[serde(default)]
    pub waf: Option<RouteWaf>,
    /// Genuine WebSocket handshakes may upgrade on this route; any other `Upgrade` is
    /// removed from requests everywhere.
    #[serde(default)]
    pub websocket: bool,
    /// Replace upstream 5xx bodies (stack traces, internal addresses) with Rampart's JSON.
    #[serde(default)]
    pub hide_upstream_errors: bool,
    /// Response headers removed before the client sees them (any case), beyond `Server`
    /// and `X-Powered-By`, which are always removed.
    #[serde(default)]
    pub response_headers_deny: Vec<String>,
    /// When set, only these response headers (any case) reach the client, plus those
    /// Rampart itself adds.
    #[serde(default)]
    pub response_headers_allow: Option<Vec<String>>,
    /// Requests must keep to an OpenAPI 3.0/3.1 description (checked after the WAF).
    #[serde(default)]
    pub openapi: Option<RouteOpenApi>,
    /// The route serves GraphQL: requests are measured and limited (after the contract).
    #[serde(default)]
    pub graphql: Option<RouteGraphql>,
    /// The route answers with its API's documentation (a page and the published
    /// description) instead of proxying; authentication and authorization apply as usual.
    #[serde(default)]
    pub docs: Option<RouteDocs>,
    /// Clients need a pass earned by solving the browser challenge (`bots.challenge`):
    /// browsers get the challenge page, other clients 403.
    #[serde(default)]
    pub challenge: bool,
    /// What this route does per bot verdict (the rest from `bots.policy`).
    #[serde(default)]
    pub bots: Option<BotPolicy>,
    /// Cross-origin requests from browsers: which origins may call and read answers;
    /// Rampart answers the preflights and its policy replaces the upstream's.
    #[serde(default)]
    pub cors: Option<Cors>,
    /// The rules engine: conditions on the request and what to do when they hold, in
    /// order, after authorization and before rate limits and the WAF.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// The route serves gRPC: only gRPC requests over HTTP/2 are taken (others get 415),
    /// Rampart's refusals are gRPC statuses, and the WAF reads headers, not the protobuf
    /// body (the upstream must speak `protocol: http2`).
    #[serde(default)]
    pub grpc: bool,
    /// The response cache: the last stage before the upstream (RFC 9111), so an answer it
    /// serves has passed every check of this request first.
    #[serde(default)]
    pub cache: Option<RouteCache>,
}

/// A route's CORS policy (see `rampart-cors`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// `https://host[:port]`, `https://*.domain` (its subdomains), or `*` (anyone; not with
    /// `credentials`).
    pub origins: Vec<String>,
    /// Methods a preflight may ask for; default GET, HEAD, POST.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Request headers a preflight may ask for, or `*`.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Response headers scripts may read beyond the safelisted ones.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Cookies and HTTP authentication may be sent, and the answer read.
    #[serde(default)]
    pub credentials: bool,
    /// How long a browser may cache a preflight's answer (at most 24h).
    #[serde(default = "default_cors_max_age")]
    pub max_age: HumanDuration,
    /// Requests from other sites' pages (an `Origin` neither allowed nor the request's own)
    /// are refused with 403 instead of passing without CORS headers: a browser sends them
    /// anyway, with the visitor's cookies, even though it will not show the answer.
    #[serde(default = "yes")]
    pub refuse_other_origins: bool,
}

fn default_cors_max_age() -> HumanDuration {
    HumanDuration::from_secs(600)
}

impl Cors {
    /// The settings `rampart-cors` compiles.
    pub fn settings(&self) -> rampart_cors::Settings {
        rampart_cors::Settings {
            origins: self.origins.clone(),
            methods: self.methods.clone(),
            headers: self.headers.clone(),
            expose_headers: self.expose_headers.clone(),
            credentials: self.credentials,
            max_age: self.max_age.0,
        }
    }
}

/// Documentation served by a route.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteDocs {
    /// The description (JSON or YAML) to publish: internal entries and sensitive examples
    /// are removed, other files inlined.
    pub spec: String,
    /// The public base URL published as the only server (none without it).
    #[serde(default)]
    pub server_url: Option<String>,
    /// Each caller sees only the operations whose `x-groups` include one of its groups
    /// (operations without `x-groups` are shown to everyone who may read the docs).
    #[serde(default)]
    pub by_groups: bool,
}

/// A GraphQL route's limits, counted over the whole request (every operation, every batch
/// entry, fragments expanded).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RouteGraphql {
    /// `enforce` (default: refuse with 400) or `detect` (events only).
    pub mode: ContractMode,
    /// Deepest selection nesting.
    pub max_depth: u32,
    /// Aliases per request.
    pub max_aliases: u64,
    /// Fields per request, fragments expanded.
    pub max_fields: u64,
    /// Each field costs 1 plus its selections times its page size (`first`, `last`,
    /// `limit`, `pageSize`).
    pub max_cost: u64,
    /// The page size assumed when a variable gives it.
    pub default_page: u64,
    /// Requests in one batch.
    pub max_batch: usize,
    /// Allow `__schema` and `__type` (default false).
    pub introspection: bool,
    /// SHA-256 (hex) of the only queries accepted; empty: any query within the limits.
    pub persisted_queries: Vec<String>,
    /// Whether refused clients see each violation.
    pub show_violations: bool,
    /// Largest body read (at most 64 KiB, what Pingora can replay).
    pub max_body: ByteSize,
}

impl Default for RouteGraphql {
    fn default() -> Self {
        RouteGraphql {
            mode: ContractMode::Enforce,
            max_depth: 10,
            max_aliases: 30,
            max_fields: 500,
            max_cost: 10_000,
            default_page: 10,
            max_batch: 10,
            introspection: false,
            persisted_queries: Vec::new(),
            show_violations: true,
            max_body: ByteSize(64 * 1024),
        }
    }
}

/// A route's API contract.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteOpenApi {
    /// The description (JSON or YAML); `$ref`s to other local files are followed.
    pub spec: String,
    /// `enforce` (default: refuse with 400/404/405/415), `detect` (events only) or `off`.
    #[serde(default)]
    pub request: ContractMode,
    /// Responses: `off` (default), `detect` (events only) or `enforce` (a response outside
    /// the contract becomes a 502, or is cut before its body).
    #[serde(default = "contract_off")]
    pub response: ContractMode,
    /// Largest response body checked (default 1 MiB); in `enforce` mode a larger one is cut.
    #[serde(default = "default_contract_response_body")]
    pub max_response_body: ByteSize,
    /// Query parameters the operation does not declare: `refuse` (default) or `allow`.
    #[serde(default)]
    pub unknown_query: UnknownQuery,
    /// Paths and methods the description does not declare: `refuse` (default: 404, or 405
    /// with `Allow`) or `allow` (passed on unchecked).
    #[serde(default)]
    pub undeclared: UnknownQuery,
    /// Whether refused clients see each violation (`true`, default) or only that the
    /// request broke the contract; events always carry the full list.
    #[serde(default = "yes")]
    pub show_violations: bool,
    /// The path prefix of the API as the upstream receives it (default: the path of the
    /// description's first `servers` URL).
    #[serde(default)]
    pub base_path: Option<String>,
    /// The description's security schemes, each mapped to the authentication method that
    /// meets it (`apiKeyAuth: api_key`, `bearer: jwt`): each operation's `security` is then
    /// enforced (401 without credentials, 403 with the wrong ones or missing scopes). Empty:
    /// operations' `security` is not checked (the route's `auth` alone applies).
    #[serde(default)]
    pub security: std::collections::BTreeMap<String, AuthMethod>,
    /// Largest body checked (default 64 KiB, Pingora's replay buffer, which is also the most
    /// it can be); a larger body is refused in `enforce` mode.
    #[serde(default = "default_contract_body")]
    pub max_body: ByteSize,
    /// Operations that are routes of their own, by `operationId` or `METHOD /template`:
    /// their own upstream, authorization (in addition to the route's) and rate limits (in
    /// addition to the route's), decided as soon as the route is known.
    #[serde(default)]
    pub operations: std::collections::BTreeMap<String, OperationSettings>,
}

/// What one operation of a route's API sets for itself.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct OperationSettings {
    /// Another upstream for this operation.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Who may call it (checked after, and in addition to, the route's `authorize`); its
    /// `groups` also decide who sees it in `docs` with `by_groups`.
    #[serde(default)]
    pub authorize: Option<Authorize>,
    /// Limits of this operation (in addition to the route's).
    #[serde(default)]
    pub rate_limit: Option<Vec<RateLimit>>,
}

fn yes() -> bool {
    true
}

fn default_contract_body() -> ByteSize {
    ByteSize(64 * 1024)
}

fn default_contract_response_body() -> ByteSize {
    ByteSize(1024 * 1024)
}

fn contract_off() -> ContractMode {
    ContractMode::Off
}

/// What a contract does with a request that breaks it.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ContractMode {
    /// Refuse it.
    #[default]
    Enforce,
    /// Let it through and report it.
    Detect,
    /// Do not check.
    Off,
}

/// Query parameters an operation does not declare.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UnknownQuery {
    /// A violation.
    #[default]
    Refuse,
    /// Passed on unchecked.
    Allow,
}
