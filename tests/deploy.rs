//! The deployment files: the systemd unit passes `systemd-analyze verify` and its offline
//! security review stays in the "OK" band (exposure at most 2.5 of 10; systemd takes the
//! threshold in tenths).
mod common;
use std::process::Command;

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        panic!("systemd-analyze is missing (Debian's systemd package)");
    };
    assert!(probe.status.success());
    let dir = common::temp_dir("unit");
    // The unit names /usr/local/bin/rampart; verify it against the binary under test.
    let unit = std::fs::read_to_string("deploy/rampart.service")
        .unwrap()
        .replace("/usr/local/bin/rampart", env!("CARGO_BIN_EXE_rampart"));
    let path = dir.join("rampart.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=25"])
        .arg(&path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exposure above 2.5:\n{report}");
    assert!(report.contains("Overall exposure level"), "{report}");
}
