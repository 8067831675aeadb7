//! Credentials never leave in events: query parameters that carry secrets (by name, any
//! case, also when the name is percent-encoded, as `api%5Fkey`) have their values replaced,
//! and a WAF match on a credential-bearing variable (Authorization, cookies, the API-key
//! header or parameter) has its matched data withheld.

const REDACTED: &str = "REDACTED";

/// A query parameter's name as a backend decodes it (`+` is a space, then percent-escapes:
/// `api%5Fkey` is `api_key`). Borrowed when there is nothing to decode.
pub fn param_name(raw: &str) -> std::borrow::Cow<'_, str> {
    if !raw.contains(['%', '+']) {
        return raw.into();
    }
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
        .into()
}

fn is_secret_name(name: &str, secrets: &[String]) -> bool {
    let n = param_name(name);
    secrets.iter().any(|s| s.eq_ignore_ascii_case(&n))
}

/// Replaces the values of secret `name=value` pairs anywhere in `text` (a query string, a
/// request line, a WAF rule's matched data). A pair starts after `?`, `&`, `;`, whitespace or
/// the start, and its value ends at `&`, `;`, whitespace, `"` or the end.
pub fn redact_pairs(text: &str, secrets: &[String]) -> String {
    if secrets.is_empty() || !text.contains('=') {
        return text.to_string();
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let is_sep = |c: u8| matches!(c, b'?' | b'&' | b';' | b' ' | b'\t' | b'\n' | b'"' | b'\'');
    while i < b.len() {
        // At a pair's start: read its name up to '='.
        let start = i;
        let mut j = i;
        while j < b.len() && b[j] != b'=' && !is_sep(b[j]) {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' && j > start && is_secret_name(&text[start..j], secrets) {
            out.push_str(&text[start..=j]);
            out.push_str(REDACTED);
            let mut k = j + 1;
            while k < b.len() && !matches!(b[k], b'&' | b';' | b' ' | b'\t' | b'\n' | b'"' | b'\'')
            {
                k += 1;
            }
            i = k;
            continue;
        }
        // Copy through the next separator.
        let mut k = j;
        while k < b.len() && !is_sep(b[k]) {
            k += 1;
        }
        if k < b.len() {
            k += 1;
        }
        out.push_str(&text[start..k]);
        i = k;
    }
    out
}

/// Whether a WAF variable (`REQUEST_HEADERS:Authorization`, `ARGS:access_token`,
/// `REQUEST_COOKIES:sid`) holds a credential, so its matched data must not be shown.
pub fn is_secret_variable(var: &str, secret_headers: &[String], secret_params: &[String]) -> bool {
    let (coll, key) = var.split_once(':').unwrap_or((var, ""));
    let coll = coll.to_ascii_uppercase();
    match coll.as_str() {
        "REQUEST_COOKIES" => true,
        "REQUEST_HEADERS" | "RESPONSE_HEADERS" => {
            secret_headers.iter().any(|h| h.eq_ignore_ascii_case(key))
        }
        "ARGS" | "ARGS_GET" | "ARGS_POST" => is_secret_name(key, secret_params),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["access_token".into(), "api_key".into()]
    }

    #[test]
    fn secret_parameters_are_redacted_under_any_spelling() {
        let n = names();
        for (input, want) in [
            ("/a?access_token=abc&x=1", "/a?access_token=REDACTED&x=1"),
            ("/a?api%5Fkey=abc", "/a?api%5Fkey=REDACTED"),
            ("/a?API_KEY=abc&b=2", "/a?API_KEY=REDACTED&b=2"),
            (
                "GET /a?x=1&Access_Token=t0k HTTP/1.1",
                "GET /a?x=1&Access_Token=REDACTED HTTP/1.1",
            ),
            (
                "Matched Data: x found within ARGS:q: access_token=zz",
                "Matched Data: x found within ARGS:q: access_token=REDACTED",
            ),
            ("/a?token_hint=1", "/a?token_hint=1"),
            ("/a?q=%", "/a?q=%"),
        ] {
            assert_eq!(redact_pairs(input, &n), want, "{input}");
        }
    }

    #[test]
    fn credential_variables() {
        let h = vec!["authorization".to_string(), "x-api-key".to_string()];
        let n = names();
        assert!(is_secret_variable("REQUEST_HEADERS:Authorization", &h, &n));
        assert!(is_secret_variable("REQUEST_HEADERS:X-API-Key", &h, &n));
        assert!(is_secret_variable("REQUEST_COOKIES:sid", &h, &n));
        assert!(is_secret_variable("ARGS:api%5fkey", &h, &n));
        assert!(!is_secret_variable("ARGS:q", &h, &n));
        assert!(!is_secret_variable("REQUEST_HEADERS:User-Agent", &h, &n));
    }
}
