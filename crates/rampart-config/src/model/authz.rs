//! Authorization: default decision, Cedar files, per-route rules.

use serde::Deserialize;

/// What a route with `auth` but no `authorize` does with an authenticated request.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DefaultAuthorization {
    /// Any authenticated consumer may pass.
    #[default]
    Allow,
    /// Refuse (403).
    Deny,
}

/// `cedar:`, the Cedar policy files routes use with `authorize.cedar: true`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct CedarFiles {
    /// The policy file (`.cedar`).
    pub policies: String,
    /// A Cedar entities file (JSON) for the policies to refer to.
    #[serde(default)]
    pub entities: Option<String>,
    /// A Cedar schema (`.cedarschema`); when given, policies are validated against it.
    #[serde(default)]
    pub schema: Option<String>,
}

/// Per-route authorization: every listed condition must hold; deny lists win.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct Authorize {
    /// Allowed groups: when `groups` or `consumers` is set, the consumer must be in one of
    /// these groups or among those ids.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Allowed consumer ids (see `groups`).
    #[serde(default)]
    pub consumers: Vec<String>,
    /// Consumers in any of these groups are refused.
    #[serde(default)]
    pub deny_groups: Vec<String>,
    /// These consumer ids are refused.
    #[serde(default)]
    pub deny_consumers: Vec<String>,
    /// OAuth scopes the token must carry.
    #[serde(default)]
    pub scopes: Option<Scopes>,
    /// Conditions on token claims; every one must hold.
    #[serde(default)]
    pub claims: Vec<ClaimCondition>,
    /// Per-operation rules: the first whose method and path match applies (in addition to
    /// the route-level conditions); a request matching none is denied.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// Also require the Cedar policies to permit.
    #[serde(default)]
    pub cedar: bool,
}

/// A per-operation rule: method and path pattern, and its own conditions.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct Operation {
    /// Methods this rule covers; empty = any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// `/orders/{id}`: `{name}` or `*` match one segment, a final `**` the rest.
    pub path: String,
    /// The action name given to Cedar (default: the method).
    #[serde(default)]
    pub operation_id: Option<String>,
    /// As the route's `groups`, for this operation.
    #[serde(default)]
    pub groups: Vec<String>,
    /// As the route's `consumers`, for this operation.
    #[serde(default)]
    pub consumers: Vec<String>,
    /// As the route's `deny_groups`, for this operation.
    #[serde(default)]
    pub deny_groups: Vec<String>,
    /// As the route's `deny_consumers`, for this operation.
    #[serde(default)]
    pub deny_consumers: Vec<String>,
    /// As the route's `scopes`, for this operation.
    #[serde(default)]
    pub scopes: Option<Scopes>,
    /// As the route's `claims`, for this operation.
    #[serde(default)]
    pub claims: Vec<ClaimCondition>,
}

/// Required OAuth scopes, from the token's `scope` (space-separated) or `scp` claim.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct Scopes {
    /// Every one of these must be granted.
    #[serde(default)]
    pub all: Vec<String>,
    /// At least one of these must be granted.
    #[serde(default)]
    pub any: Vec<String>,
}

/// A condition on a claim (dotted path for nested claims); exactly one test.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct ClaimCondition {
    /// The claim name, or a dotted path (`realm_access.roles`).
    pub claim: String,
    /// The claim (or, for an array, one element) equals this value.
    #[serde(default)]
    pub equals: Option<String>,
    /// The claim (or one element) is one of these values.
    #[serde(default)]
    pub one_of: Vec<String>,
    /// The claim (or one element) matches this pattern (`*` any run, `?` one character).
    #[serde(default)]
    pub glob: Option<String>,
    /// `true`: the claim must be present; `false`: it must be absent.
    #[serde(default)]
    pub present: Option<bool>,
}
