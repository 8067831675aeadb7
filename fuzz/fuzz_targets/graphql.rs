//! One GraphQL request measured against tight limits: the first byte picks how it came (JSON
//! body, `application/graphql` text, GET parameters); the rest is the request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_graphql::{check, query_pairs, Limits, Request};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_depth: 6,
        max_aliases: 5,
        max_fields: 50,
        max_cost: 500,
        default_page: 10,
        max_batch: 3,
        introspection: pick & 0x80 != 0,
        allow_list: None,
    };
    let result = match pick % 3 {
        0 => check(Request::Json(rest), &limits),
        1 => check(Request::Text(rest), &limits),
        _ => match query_pairs(&String::from_utf8_lossy(rest)) {
            Ok(pairs) => check(Request::Get(&pairs), &limits),
            Err(_) => return,
        },
    };
    if let Ok(a) = result {
        assert!(a.depth <= limits.max_depth && a.fields <= limits.max_fields);
        assert!(a.aliases <= limits.max_aliases && a.cost <= limits.max_cost);
    }
});
