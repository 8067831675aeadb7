//! Why a request is not authorized, or cannot be evaluated.

/// The errors of `rampart-authz`: a condition that does not hold (the reason of a deny), or
/// a Cedar request that cannot be built (evaluated as a deny too). Cedar's errors are
/// boxed: they are large, and a failed condition is a common result.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The consumer is on a deny list.
    #[error("consumer {consumer} is denied")]
    ConsumerDenied {
        /// The consumer id.
        consumer: String,
    },
    /// One of the consumer's groups is on a deny list.
    #[error("group {group} is denied")]
    GroupDenied {
        /// The denied group.
        group: String,
    },
    /// Neither the consumer nor any of its groups is on the allow lists.
    #[error("consumer not in an allowed group or list")]
    NotAllowed,
    /// A scope that every request needs is not granted.
    #[error("missing scope {scope}")]
    MissingScope {
        /// The scope missing.
        scope: String,
    },
    /// None of the scopes of which one is needed is granted.
    #[error("none of the accepted scopes")]
    NoAcceptedScope,
    /// A claim that must be present is absent.
    #[error("claim {claim} must be present")]
    ClaimAbsent {
        /// The claim (as configured).
        claim: String,
    },
    /// A claim that must be absent is present.
    #[error("claim {claim} must be absent")]
    ClaimPresent {
        /// The claim (as configured).
        claim: String,
    },
    /// No value of the claim equals the required one.
    #[error("claim {claim} does not equal the required value")]
    ClaimNotEqual {
        /// The claim (as configured).
        claim: String,
    },
    /// No value of the claim is one of the allowed ones.
    #[error("claim {claim} is not one of the allowed values")]
    ClaimNotOneOf {
        /// The claim (as configured).
        claim: String,
    },
    /// No value of the claim matches the glob.
    #[error("claim {claim} does not match {glob}")]
    ClaimNoMatch {
        /// The claim (as configured).
        claim: String,
        /// The pattern.
        glob: String,
    },
    /// A principal, action or resource that is not a valid Cedar entity id.
    #[error("bad {kind}")]
    CedarId {
        /// `principal`, `action` or `resource`.
        kind: &'static str,
    },
    /// The request's entities (principal and groups) are inconsistent.
    #[error("{0}")]
    CedarEntities(#[source] Box<cedar_policy::entities_errors::EntitiesError>),
    /// A record of the request context cannot be built.
    #[error("{0}")]
    CedarExpression(#[source] Box<cedar_policy::ExpressionConstructionError>),
    /// The request context cannot be built.
    #[error("{0}")]
    CedarContext(#[source] Box<cedar_policy::ContextCreationError>),
    /// The request does not conform to the schema.
    #[error("{0}")]
    CedarRequest(#[source] Box<cedar_policy::RequestValidationError>),
}
