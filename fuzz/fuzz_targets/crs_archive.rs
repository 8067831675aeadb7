//! A CRS release archive as `rampart crs install` unpacks it (`rampart_crs::unpack`): bytes
//! from a download, so anything. Never a panic; nothing written outside the destination
//! (every entry is checked before it is written; the destination is emptied each time).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn dest() -> &'static std::path::Path {
    static D: OnceLock<std::path::PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            std::path::PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("rampart-fuzz-crs-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dest();
    let _ = std::fs::remove_dir_all(d);
    std::fs::create_dir_all(d).unwrap();
    let _ = rampart_crs::unpack(data, &d.join("tree"), "fuzz");
});
