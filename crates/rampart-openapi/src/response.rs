//! Responses: the status must be declared (exactly, as `2XX`, or by `default`), the body's
//! media type among the declared ones, and a JSON body must fit its schema (`writeOnly`
//! properties may not be returned). Violations point under `/response`.

use crate::body::{strict_json, MediaType};
use crate::docs::Loc;
use crate::schema::{Compiled, Direction};
use crate::{Error, Loader, Operation, Violation};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Exact(u16),
    /// `2XX`: the first digit.
    Class(u16),
    Default,
}

/// One declared response.
#[derive(Debug)]
pub(crate) struct ResponseSpec {
    status: Status,
    /// Media range → its schema. Empty: the response has no body.
    media: Vec<(String, Option<Compiled>)>,
}

/// The responses declared for an operation.
pub(crate) fn declared(load: &Loader, loc: &Loc, op: &Value) -> Result<Vec<ResponseSpec>, Error> {
    let mut out = Vec::new();
    let Some(responses) = op.get("responses").and_then(Value::as_object) else {
        return Ok(out);
    };
    for (code, r) in responses {
        let rloc = loc.join("responses").join(code);
        let status = match code.as_str() {
            "default" => Status::Default,
            c if c.len() == 3 && c.ends_with("XX") => Status::Class(
                c[..1]
                    .parse()
                    .map_err(|_| rloc.error("not a status code"))?,
            ),
            c => Status::Exact(c.parse().map_err(|_| rloc.error("not a status code"))?),
        };
        let (rloc, r) = load.docs.resolve(&rloc, r)?;
        let mut media = Vec::new();
        if let Some(content) = r.get("content").and_then(Value::as_object) {
            for (mt, m) in content {
                let sloc = rloc.join("content").join(mt).join("schema");
                let schema = m
                    .get("schema")
                    .map(|s| crate::compile(load.docs, load.dialect, Direction::Response, &sloc, s))
                    .transpose()?;
                media.push((mt.clone(), schema));
            }
        }
        out.push(ResponseSpec { status, media });
    }
    Ok(out)
}

/// What [`Operation::check_response_head`] found.
#[derive(Debug, Default)]
pub struct ResponseHead {
    /// The status or media type is not the contract's.
    pub violations: Vec<Violation>,
    /// The body has a JSON schema to be checked against.
    pub body_schema: bool,
}

impl Operation {
    fn response_for(&self, status: u16) -> Option<&ResponseSpec> {
        let pick = |want: Status| self.responses.iter().find(|r| r.status == want);
        pick(Status::Exact(status))
            .or_else(|| pick(Status::Class(status / 100)))
            .or_else(|| pick(Status::Default))
    }

    /// Whether the description declares any response for this operation (descriptions
    /// loaded without responses declare none).
    pub fn has_responses(&self) -> bool {
        !self.responses.is_empty()
    }

    fn media_for<'a>(
        spec: &'a ResponseSpec,
        content_type: Option<&str>,
    ) -> Result<Option<&'a Option<Compiled>>, Violation> {
        if spec.media.is_empty() {
            return Ok(None);
        }
        let bad = |m: &str| Violation::new("/response/header/content-type".into(), "media-type", m);
        let mt = content_type
            .and_then(MediaType::parse)
            .ok_or_else(|| bad("a body needs a valid Content-Type"))?;
        spec.media
            .iter()
            .filter_map(|(range, s)| mt.matched_by(range).map(|q| (q, s)))
            .max_by_key(|(q, _)| *q)
            .map(|(_, s)| Some(s))
            .ok_or_else(|| bad("media type not declared for this response"))
    }

    /// Checks a response's status and media type.
    pub fn check_response_head(&self, status: u16, content_type: Option<&str>) -> ResponseHead {
        let mut head = ResponseHead::default();
        let Some(spec) = self.response_for(status) else {
            head.violations.push(Violation::new(
                "/response/status".into(),
                "responses",
                format!("status {status} is not declared for this operation"),
            ));
            return head;
        };
        match Self::media_for(spec, content_type) {
            Err(v) if content_type.is_some() => head.violations.push(v),
            // No Content-Type: the body check decides (an empty body needs none).
            Err(_) => {}
            Ok(found) => {
                head.body_schema = found.is_some_and(|s| s.is_some())
                    && content_type
                        .and_then(MediaType::parse)
                        .is_some_and(|m| m.is_json());
            }
        }
        head
    }

    /// Checks a complete response body (after [`Operation::check_response_head`]).
    pub fn check_response_body(
        &self,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        let Some(spec) = self.response_for(status) else {
            return out;
        };
        if body.is_empty() {
            return out;
        }
        let schema = match Self::media_for(spec, content_type) {
            Ok(Some(Some(s))) => s,
            Ok(_) => return out,
            Err(v) => {
                out.push(v);
                return out;
            }
        };
        match strict_json(body) {
            Ok(v) => schema.check(&v, "/response/body", &mut out),
            Err(m) => out.push(Violation::new(
                "/response/body".into(),
                "json",
                format!("not valid JSON: {m}"),
            )),
        }
        out.truncate(crate::MAX_VIOLATIONS);
        out
    }
}
