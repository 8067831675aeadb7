use super::*;
use std::io::Write;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rampart-crs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tar entry; `name` is written into the header's raw name field, so `..` and absolute
/// names can be made (the tar crate's own setters refuse them).
fn entry(b: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, body: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    if kind == tar::EntryType::Symlink {
        h.set_link_name("/etc/passwd").unwrap();
    }
    h.set_cksum();
    b.append(&h, body).unwrap();
}

fn gz(tar: Vec<u8>) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&tar).unwrap();
    e.finish().unwrap()
}

fn good() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, "coreruleset-9.9.9/", tar::EntryType::Directory, b"");
    entry(
        &mut b,
        "coreruleset-9.9.9/crs-setup.conf.example",
        tar::EntryType::Regular,
        b"SecAction \"id:900990,phase:1,pass,nolog,setvar:tx.crs_setup_version=999\"\n",
    );
    entry(
        &mut b,
        "coreruleset-9.9.9/rules/REQUEST-901-INITIALIZATION.conf",
        tar::EntryType::Regular,
        b"# rules\n",
    );
    entry(
        &mut b,
        "coreruleset-9.9.9/rules/words.data",
        tar::EntryType::Regular,
        b"a\nb\n",
    );
    gz(b.into_inner().unwrap())
}

#[test]
fn a_good_archive_installs_and_lists() {
    let d = scratch("good");
    let a = good();
    let got = install(&a, &sha256_hex(&a), "9.9.9", &d, "test").unwrap();
    assert_eq!(got.rule_files, 1);
    assert!(!got.replaced);
    let tree = CrsTree::installed(&d, "9.9.9").unwrap();
    assert_eq!(tree.setup, d.join("9.9.9/crs-setup.conf.example"));
    assert_eq!(tree.files().len(), 2);
    let listed = list(&d).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sha256.as_deref(), Some(sha256_hex(&a).as_str()));
    // Again: replaced, and nothing left over beside it.
    let again = install(&a, &sha256_hex(&a), "9.9.9", &d, "test").unwrap();
    assert!(again.replaced);
    let names: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("9.9.9")]);
}

fn refused(archive: &[u8], name: &str) -> String {
    let d = scratch(name);
    let e = install(archive, &sha256_hex(archive), "9.9.9", &d, "test")
        .unwrap_err()
        .to_string();
    let left: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
    assert!(left.is_empty(), "{name}: left {left:?} behind");
    e
}

#[test]
fn hostile_archives_are_refused_and_leave_nothing() {
    let mut b = tar::Builder::new(Vec::new());
    entry(
        &mut b,
        "coreruleset-9.9.9/../../escape.conf",
        tar::EntryType::Regular,
        b"x",
    );
    assert!(refused(&gz(b.into_inner().unwrap()), "dotdot").contains("leaves"));

    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, "/etc/cron.d/x", tar::EntryType::Regular, b"x");
    assert!(refused(&gz(b.into_inner().unwrap()), "abs").contains("leaves"));

    let mut b = tar::Builder::new(Vec::new());
    entry(
        &mut b,
        "coreruleset-9.9.9/rules/link.conf",
        tar::EntryType::Symlink,
        b"",
    );
    assert!(refused(&gz(b.into_inner().unwrap()), "symlink").contains("not a file"));

    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, "a/rules/x.conf", tar::EntryType::Regular, b"x");
    entry(&mut b, "b/rules/y.conf", tar::EntryType::Regular, b"x");
    assert!(refused(&gz(b.into_inner().unwrap()), "twotops").contains("one top"));

    // No rules in it.
    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, "x/README", tar::EntryType::Regular, b"x");
    assert!(refused(&gz(b.into_inner().unwrap()), "norules").contains("rule file"));

    // Truncated at every length that cuts into the data: refused, never half-installed.
    let a = good();
    for cut in [a.len() / 4, a.len() / 2, a.len() - 9] {
        let e = refused(&a[..cut], &format!("cut{cut}"));
        assert!(e.contains("not a usable CRS archive"), "{e}");
    }
    assert!(refused(b"not gzip at all", "garbage").contains("not a usable"));
}

#[test]
fn a_decompression_bomb_stops_at_the_cap() {
    // One entry that claims more than the cap: refused on its header.
    let mut h = tar::Header::new_gnu();
    h.set_path("c/rules/big.conf").unwrap();
    h.set_size(MAX_UNPACKED_BYTES + 1);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut t = h.as_bytes().to_vec();
    t.extend(std::iter::repeat_n(0u8, 1 << 20));
    let e = refused(&gz(t), "bomb");
    assert!(e.contains("bytes once unpacked"), "{e}");
}

#[test]
fn checksums_and_versions_are_checked() {
    let d = scratch("sum");
    let a = good();
    let e = install(&a, &"0".repeat(64), "9.9.9", &d, "http://m/x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("checksum mismatch for http://m/x"), "{e}");
    assert!(std::fs::read_dir(&d).unwrap().next().is_none());
    for v in ["4.28", "../4.2.0", "4.2.0/", "v4.2.0", "4.2.a", ""] {
        assert!(check_version(v).is_err(), "{v}");
    }
    assert!(expected_sha256("4.28.0", None)
        .unwrap_err()
        .to_string()
        .contains("--sha256"));
    assert_eq!(
        expected_sha256(DEFAULT_VERSION, None).unwrap(),
        KNOWN_SHA256[0].1
    );
    assert!(expected_sha256("4.28.0", Some("abc")).is_err());
    assert_eq!(
        expected_sha256("4.28.0", Some(&"AB".repeat(32))).unwrap(),
        "ab".repeat(32)
    );
    assert_eq!(
        archive_url("http://127.0.0.1:1/m/", "4.29.0"),
        "http://127.0.0.1:1/m/v4.29.0/coreruleset-4.29.0-minimal.tar.gz"
    );
}

#[test]
fn a_missing_version_says_how_to_install_it() {
    let d = scratch("missing");
    let e = CrsTree::installed(&d, "4.29.0").unwrap_err().to_string();
    assert!(e.contains("rampart crs install --version 4.29.0"), "{e}");
    assert!(list(&d.join("nothing")).unwrap().is_empty());
}

#[test]
fn the_shared_crs_tree_is_located() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crs");
    if !shared.is_dir() {
        panic!("../shared/crs is missing beside the checkout");
    }
    let t = CrsTree::locate(&shared, None).unwrap();
    assert_eq!(t.setup, shared.join("rules/crs-setup.conf.example"));
    assert!(t.rule_files.len() > 20);
    assert!(t.rule_files.windows(2).all(|w| w[0] < w[1]));
}
