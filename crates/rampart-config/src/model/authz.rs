//! Authorization: default decision, Cedar files, per-route rules.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DefaultAuthorization {
    #[default]
    Allow,
    Deny,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct CedarFiles {
    pub policies: String,
    #[serde(default)]
    pub entities: Option<String>,
    /// A Cedar schema (`.cedarschema`); when given, policies are validated against it.
    #[serde(default)]
    pub schema: Option<String>,
}

/// Per-route authorization: every listed condition must hold; deny lists win.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct Authorize {
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub consumers: Vec<String>,
    #[serde(default)]
    pub deny_groups: Vec<String>,
    #[serde(default)]
    pub deny_consumers: Vec<String>,
    #[serde(default)]
    pub scopes: Option<Scopes>,
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

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct Operation {
    #[serde(default)]
    pub methods: Vec<String>,
    /// `/orders/{id}`: `{name}` or `*` match one segment, a final `**` the rest.
    pub path: String,
    /// The action name given to Cedar (default: the method).
    #[serde(default)]
    pub operation_id: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub consumers: Vec<String>,
    #[serde(default)]
    pub deny_groups: Vec<String>,
    #[serde(default)]
    pub deny_consumers: Vec<String>,
    #[serde(default)]
    pub scopes: Option<Scopes>,
    #[serde(default)]
    pub claims: Vec<ClaimCondition>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct Scopes {
    #[serde(default)]
    pub all: Vec<String>,
    #[serde(default)]
    pub any: Vec<String>,
}

/// A condition on a claim (dotted path for nested claims); exactly one test.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct ClaimCondition {
    pub claim: String,
    #[serde(default)]
    pub equals: Option<String>,
    #[serde(default)]
    pub one_of: Vec<String>,
    #[serde(default)]
    pub glob: Option<String>,
    #[serde(default)]
    pub present: Option<bool>,
}
