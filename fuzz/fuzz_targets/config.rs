//! The config loader: YAML text → typed, validated `Config` (`rampart_config::load_str_with_env`),
//! never a panic, whatever the text. A config that loads also goes through what the admin
//! API does with it: redact the secrets, put them back (`restore`), and the document must
//! be the one read.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if rampart_config::load_str_with_env(text, "fuzz.yaml", &|_| None).is_err() {
        return;
    }
    if let Ok(doc) = rampart_config::document::from_text(text) {
        let mut back = rampart_config::document::redact(&doc);
        let missing = rampart_config::document::restore(&mut back, &doc);
        assert!(missing.is_empty(), "{missing:?}");
        assert_eq!(back, doc);
    }
});
