//! Arbitrary bytes as a SecLang file: the parser may reject them, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(directives) = rampart_waf::parse_str(&text, "<fuzz>") {
        // Whatever parses must also compile or be refused cleanly.
        let _ = rampart_waf::engine::Ruleset::compile(&directives, std::path::Path::new("."));
    }
});
