//! Parameters: read from the path, the query, headers and cookies as their `style` and
//! `explode` say, turned into JSON values of their schema's type, then checked.

use crate::schema::{Compiled, Shape};
use crate::Violation;
use serde_json::{Map, Number, Value};

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum In {
    Path,
    Query,
    Header,
    Cookie,
}

impl In {
    pub fn parse(s: &str) -> Option<In> {
        Some(match s {
            "path" => In::Path,
            "query" => In::Query,
            "header" => In::Header,
            "cookie" => In::Cookie,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            In::Path => "path",
            In::Query => "query",
            In::Header => "header",
            In::Cookie => "cookie",
        }
    }
}

/// How a parameter is serialized (OpenAPI `style`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Simple,
    Form,
    Label,
    Matrix,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
}

impl Style {
    pub fn parse(s: &str) -> Option<Style> {
        Some(match s {
            "simple" => Style::Simple,
            "form" => Style::Form,
            "label" => Style::Label,
            "matrix" => Style::Matrix,
            "spaceDelimited" => Style::SpaceDelimited,
            "pipeDelimited" => Style::PipeDelimited,
            "deepObject" => Style::DeepObject,
            _ => return None,
        })
    }

    pub fn default_for(location: In) -> Style {
        match location {
            In::Query | In::Cookie => Style::Form,
            In::Path | In::Header => Style::Simple,
        }
    }
}

/// One declared parameter.
#[derive(Debug)]
pub(crate) struct Param {
    pub name: String,
    pub location: In,
    pub required: bool,
    pub style: Style,
    pub explode: bool,
    pub schema: Option<Compiled>,
    /// Declared with `content: {application/json: ...}`: the text is JSON.
    pub json: bool,
}

/// The request's parameters as sent, decoded.
pub(crate) struct Sent<'a> {
    pub path: &'a [(String, String)],
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, Vec<u8>)],
    pub cookies: &'a [(String, String)],
}

impl Param {
    fn pointer(&self) -> String {
        format!(
            "/{}/{}",
            self.location.name(),
            crate::sanitize_name(&self.name)
        )
    }

    fn shape(&self) -> Shape {
        self.schema
            .as_ref()
            .map(|s| s.shape.clone())
            .unwrap_or_default()
    }

    /// Checks this parameter in `sent`; returns the query names it consumed.
    pub fn check(&self, sent: &Sent, out: &mut Vec<Violation>) -> Vec<String> {
        let shape = self.shape();
        let mut used = Vec::new();
        let value = match self.read(sent, &shape, &mut used) {
            Ok(v) => v,
            Err(message) => {
                out.push(Violation::new(self.pointer(), "style", message));
                return used;
            }
        };
        match value {
            None if self.required => out.push(Violation::new(
                self.pointer(),
                "required",
                "required parameter is missing",
            )),
            None => {}
            Some(v) => {
                if let Some(s) = &self.schema {
                    s.check(&v, &self.pointer(), out);
                }
            }
        }
        used
    }

    fn read(
        &self,
        sent: &Sent,
        shape: &Shape,
        used: &mut Vec<String>,
    ) -> Result<Option<Value>, String> {
        let array = shape.allows("array");
        let object = shape.allows("object") && !array;
        // Every text sent under this parameter's name.
        let texts: Vec<String> = match self.location {
            In::Path => named(sent.path, &self.name),
            In::Query => named(sent.query, &self.name),
            In::Cookie => named(sent.cookies, &self.name),
            In::Header => sent
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(&self.name))
                .map(|(_, v)| {
                    String::from_utf8(v.clone())
                        .map_err(|_| "header value is not UTF-8".to_string())
                })
                .collect::<Result<_, _>>()?,
        };
        if self.location == In::Query && !texts.is_empty() {
            used.push(self.name.clone());
        }
        if self.json {
            return match texts.as_slice() {
                [] => Ok(None),
                [one] => crate::body::strict_json(one.as_bytes())
                    .map(Some)
                    .map_err(|e| format!("not valid JSON: {e}")),
                _ => Err("given more than once".into()),
            };
        }
        if self.location == In::Query && object {
            match self.style {
                Style::DeepObject => return Ok(deep_object(sent.query, &self.name, shape, used)),
                Style::Form if self.explode => {
                    // Each property is its own query parameter.
                    let mut m = Map::new();
                    for (prop, types) in &shape.properties {
                        let vals = named(sent.query, prop);
                        if let Some(v) = vals.first() {
                            if vals.len() > 1 {
                                return Err(format!("property {prop:?} given more than once"));
                            }
                            used.push(prop.clone());
                            m.insert(prop.clone(), coerce(v, types));
                        }
                    }
                    return Ok((!m.is_empty()).then_some(Value::Object(m)));
                }
                _ => {}
            }
        }
        if texts.is_empty() {
            return Ok(None);
        }
        if array {
            let explode_repeats = matches!(self.location, In::Query | In::Cookie)
                && self.style == Style::Form
                && self.explode;
            let items: Vec<String> = if explode_repeats {
                texts
            } else {
                if texts.len() > 1 && self.location != In::Header {
                    return Err("given more than once".into());
                }
                let joined = texts.join(",");
                let text = self.strip_style_prefix(&joined)?;
                let sep = match self.style {
                    Style::SpaceDelimited => ' ',
                    Style::PipeDelimited => '|',
                    Style::Label if self.explode => '.',
                    Style::Matrix if self.explode => ';',
                    _ => ',',
                };
                if text.is_empty() {
                    Vec::new()
                } else if self.style == Style::Matrix && self.explode {
                    text.split(';')
                        .map(|p| {
                            p.strip_prefix(&format!("{}=", self.name))
                                .unwrap_or(p)
                                .to_string()
                        })
                        .collect()
                } else {
                    text.split(sep).map(str::to_string).collect()
                }
            };
            let items = items.iter().map(|t| coerce(t, &shape.items)).collect();
            return Ok(Some(Value::Array(items)));
        }
        // A single value: a second one is the ambiguity backends resolve differently
        // (first or last wins), so it is refused.
        let [one] = texts.as_slice() else {
            return Err("given more than once".into());
        };
        let text = self.strip_style_prefix(one)?;
        if object {
            let parts: Vec<&str> = text.split(',').collect();
            let mut m = Map::new();
            if self.explode {
                for p in parts {
                    let (k, v) = p.split_once('=').ok_or("not a key=value list")?;
                    m.insert(k.to_string(), coerce(v, &prop_types(shape, k)));
                }
            } else {
                if !parts.len().is_multiple_of(2) {
                    return Err("not a key,value list".into());
                }
                for kv in parts.chunks(2) {
                    m.insert(kv[0].to_string(), coerce(kv[1], &prop_types(shape, kv[0])));
                }
            }
            return Ok(Some(Value::Object(m)));
        }
        Ok(Some(coerce(&text, &shape.types)))
    }

    /// Label (`.x`) and matrix (`;name=x`) values without their prefix.
    fn strip_style_prefix(&self, text: &str) -> Result<String, String> {
        match self.style {
            Style::Label => text
                .strip_prefix('.')
                .map(str::to_string)
                .ok_or_else(|| "label style values start with '.'".into()),
            Style::Matrix if !self.explode => text
                .strip_prefix(&format!(";{}=", self.name))
                .map(str::to_string)
                .ok_or_else(|| "matrix style values start with ';name='".into()),
            Style::Matrix => text
                .strip_prefix(';')
                .map(str::to_string)
                .ok_or_else(|| "matrix style values start with ';'".into()),
            _ => Ok(text.to_string()),
        }
    }
}

fn named(pairs: &[(String, String)], name: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .collect()
}

fn prop_types(shape: &Shape, name: &str) -> Vec<String> {
    shape
        .properties
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, t)| t.clone())
        .unwrap_or_default()
}

/// `name[prop]=v` pairs as an object.
fn deep_object(
    query: &[(String, String)],
    name: &str,
    shape: &Shape,
    used: &mut Vec<String>,
) -> Option<Value> {
    let mut m = Map::new();
    for (k, v) in query {
        let Some(prop) = k
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix('['))
            .and_then(|r| r.strip_suffix(']'))
        else {
            continue;
        };
        used.push(k.clone());
        m.insert(prop.to_string(), coerce(v, &prop_types(shape, prop)));
    }
    (!m.is_empty()).then_some(Value::Object(m))
}

/// A parameter's text as the first of `types` it can be read as; as a string otherwise
/// (the schema then says what is wrong with it).
pub(crate) fn coerce(text: &str, types: &[String]) -> Value {
    for t in types {
        let v = match t.as_str() {
            "integer" => text
                .parse::<i64>()
                .ok()
                .map(Number::from)
                .or_else(|| text.parse::<u64>().ok().map(Number::from))
                .map(Value::Number),
            "number" => text
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && !text.contains(['x', 'X', 'n', 'N', 'i', 'I']))
                .and_then(|f| {
                    // Integers keep their exact value (an f64 would round past 2^53).
                    text.parse::<i64>()
                        .ok()
                        .map(Number::from)
                        .or_else(|| Number::from_f64(f))
                })
                .map(Value::Number),
            "boolean" => match text {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
            "null" => (text.is_empty() || text == "null").then_some(Value::Null),
            "string" => Some(Value::String(text.to_string())),
            _ => None,
        };
        if let Some(v) = v {
            return v;
        }
    }
    Value::String(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coercion_keeps_what_does_not_fit_as_text() {
        let t = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(coerce("12", &t(&["integer"])), Value::from(12));
        assert_eq!(coerce("12.5", &t(&["integer"])), Value::from("12.5"));
        assert_eq!(coerce("12.5", &t(&["number"])), Value::from(12.5));
        assert_eq!(coerce("NaN", &t(&["number"])), Value::from("NaN"));
        assert_eq!(coerce("inf", &t(&["number"])), Value::from("inf"));
        assert_eq!(coerce("true", &t(&["boolean"])), Value::from(true));
        assert_eq!(coerce("", &t(&["integer", "null"])), Value::Null);
        assert_eq!(
            coerce("18446744073709551615", &t(&["integer"])),
            Value::from(u64::MAX)
        );
        assert_eq!(coerce("x", &[]), Value::from("x"));
    }
}
