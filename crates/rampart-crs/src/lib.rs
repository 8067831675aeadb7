//! The OWASP Core Rule Set (CRS) on disk.
//!
//! - **Where:** versions live in `<data>/crs/<version>/`, `<data>` being `RAMPART_DATA_DIR`,
//!   else `$XDG_DATA_HOME/rampart`, else `~/.local/share/rampart`, else `/var/lib/rampart`.
//! - **Install:** a release archive is checked against a SHA-256 (one Rampart knows for the
//!   version, or one the operator gives), unpacked into a staging directory beside the target
//!   with every entry checked (regular files and directories only, no `..`, no absolute
//!   paths, bounded size and count), verified to hold a rule set, then renamed into place.
//!   A failure at any step leaves nothing behind.
//! - **Load:** [`CrsTree::locate`] says which files a config's `waf.crs` loads, in order:
//!   the setup file, then `rules/*.conf` by name.
//!
//! No network here: the caller fetches the archive (the `rampart crs install` command).

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The version `rampart crs install` installs when none is named.
pub const DEFAULT_VERSION: &str = "4.29.0";

/// Where release archives are fetched from; `{mirror}/v{version}/coreruleset-{version}-minimal.tar.gz`.
pub const DEFAULT_MIRROR: &str = "https://github.com/coreruleset/coreruleset/releases/download";

/// SHA-256 of each release's `coreruleset-<version>-minimal.tar.gz` that Rampart accepts
/// without `--sha256`.
///
/// 4.29.0: the same value is pinned by two unrelated public projects that downloaded the
/// asset from the release page (278,138 bytes); it could not be recomputed here, the build
/// machine having no access to github.com. Versions not listed need `--sha256`, which the
/// operator takes from a source they trust (or after checking the release's `.asc`
/// signature with the CRS project's key).
pub const KNOWN_SHA256: &[(&str, &str)] = &[(
    "4.29.0",
    "1aa1c5c8fc29e532d35293bcea36bf72de61db8f6ed4716a0f91ab14552b7fed",
)];

/// Largest archive accepted (the minimal 4.x archives are ~280 KiB).
pub const MAX_ARCHIVE_BYTES: u64 = 32 * 1024 * 1024;
/// Largest unpacked tree (a decompression bomb stops here; the real tree is ~2.5 MiB).
pub const MAX_UNPACKED_BYTES: u64 = 128 * 1024 * 1024;
/// Most entries an archive may hold (the real one has under 100).
pub const MAX_ENTRIES: usize = 10_000;

/// The file written beside an installed version, saying where it came from.
const MARKER: &str = ".rampart-install.json";

/// Why the CRS could not be installed or found.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not a version number.
    #[error("{0:?} is not a CRS version (expected three numbers, e.g. {DEFAULT_VERSION})")]
    Version(String),
    /// Not a SHA-256 in hex.
    #[error("{0:?} is not a SHA-256 (expected 64 hexadecimal digits)")]
    Sha256Syntax(String),
    /// No checksum to check against.
    #[error(
        "Rampart knows no SHA-256 for CRS {version} (it knows {known}); \
         pass --sha256 with the archive's checksum from a source you trust"
    )]
    UnknownVersion {
        /// The version asked for.
        version: String,
        /// The versions Rampart knows.
        known: String,
    },
    /// The bytes are not the release.
    #[error("checksum mismatch for {what}: expected SHA-256 {expected}, got {actual}; nothing was installed")]
    Checksum {
        /// What was checked (the URL or file).
        what: String,
        /// The checksum required.
        expected: String,
        /// The checksum of what arrived.
        actual: String,
    },
    /// The archive is not a usable CRS release.
    #[error("{what} is not a usable CRS archive: {reason}; nothing was installed")]
    Archive {
        /// The URL or file.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path operated on.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The CRS a config names is not there.
    #[error("{0}")]
    Missing(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Rampart's data directory (see the crate docs for the order it is chosen in).
pub fn data_dir() -> PathBuf {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = env("RAMPART_DATA_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = env("XDG_DATA_HOME") {
        return PathBuf::from(d).join("rampart");
    }
    if let Some(h) = env("HOME") {
        return PathBuf::from(h).join(".local/share/rampart");
    }
    PathBuf::from("/var/lib/rampart")
}

/// The directory holding installed CRS versions: `<data>/crs`.
pub fn versions_dir() -> PathBuf {
    data_dir().join("crs")
}

/// Checks a version is three dot-separated numbers (it becomes a path and a URL).
pub fn check_version(v: &str) -> Result<(), Error> {
    let parts: Vec<&str> = v.split('.').collect();
    let ok = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(Error::Version(v.to_string()))
    }
}

/// The checksum an archive of `version` must have: `given` (checked for syntax), else the
/// one Rampart knows.
pub fn expected_sha256(version: &str, given: Option<&str>) -> Result<String, Error> {
    check_version(version)?;
    if let Some(g) = given {
        let g = g.trim().to_ascii_lowercase();
        if g.len() != 64 || !g.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Sha256Syntax(g));
        }
        return Ok(g);
    }
    KNOWN_SHA256
        .iter()
        .find(|(v, _)| *v == version)
        .map(|(_, s)| s.to_string())
        .ok_or_else(|| Error::UnknownVersion {
            version: version.to_string(),
            known: KNOWN_SHA256
                .iter()
                .map(|(v, _)| *v)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The release archive's URL under `mirror` (trailing `/` ignored).
pub fn archive_url(mirror: &str, version: &str) -> String {
    format!(
        "{}/v{version}/coreruleset-{version}-minimal.tar.gz",
        mirror.trim_end_matches('/')
    )
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What an install did.
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    /// The version's directory.
    pub dir: PathBuf,
    /// Rule files (`rules/*.conf`) in it.
    pub rule_files: usize,
    /// Whether an earlier install of the same version was replaced.
    pub replaced: bool,
}

/// Checks `archive` against `expected` and installs it as `<versions_dir>/<version>`,
/// replacing an earlier install of that version only once the new one is complete.
/// `what` names the archive in errors (its URL).
pub fn install(
    archive: &[u8],
    expected: &str,
    version: &str,
    versions_dir: &Path,
    what: &str,
) -> Result<Installed, Error> {
    check_version(version)?;
    let actual = sha256_hex(archive);
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(Error::Checksum {
            what: what.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    std::fs::create_dir_all(versions_dir).map_err(io(versions_dir))?;
    let staging = versions_dir.join(format!(".staging-{version}-{}", std::process::id()));
    // A crashed earlier run with the same pid may have left one.
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging).map_err(io(&staging))?;
    let result = unpack(archive, &staging, what).and_then(|()| {
        let tree = CrsTree::locate(&staging, None).map_err(|e| Error::Archive {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
        let marker = serde_json::json!({
            "version": version,
            "sha256": actual,
            "source": what,
        });
        let path = staging.join(MARKER);
        std::fs::write(&path, format!("{marker:#}\n")).map_err(io(&path))?;
        Ok(tree.rule_files.len())
    });
    let rule_files = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let target = versions_dir.join(version);
    let replaced = target.exists();
    if replaced {
        let old = versions_dir.join(format!(".old-{version}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&old);
        if let Err(e) = std::fs::rename(&target, &old) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(io(&target)(e));
        }
        if let Err(e) = std::fs::rename(&staging, &target) {
            // Put the earlier install back rather than leave none.
            let _ = std::fs::rename(&old, &target);
            let _ = std::fs::remove_dir_all(&staging);
            return Err(io(&target)(e));
        }
        let _ = std::fs::remove_dir_all(&old);
    } else if let Err(e) = std::fs::rename(&staging, &target) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(io(&target)(e));
    }
    Ok(Installed {
        dir: target,
        rule_files,
        replaced,
    })
}

/// Unpacks a gzip'd tar into `dest`, dropping the archive's top directory
/// (`coreruleset-4.x.y/`). Every entry must be a regular file or a directory under that one
/// top directory, with a plain relative path; sizes and counts are bounded.
pub fn unpack(archive: &[u8], dest: &Path, what: &str) -> Result<(), Error> {
    let bad = |reason: String| Error::Archive {
        what: what.to_string(),
        reason,
    };
    let gz = flate2::read::GzDecoder::new(archive);
    // The cap counts decompressed bytes, so a bomb stops here whatever the tar headers say.
    let mut tar = tar::Archive::new(gz.take(MAX_UNPACKED_BYTES + 1));
    let entries = tar.entries().map_err(|e| bad(format!("unreadable: {e}")))?;
    let mut top: Option<std::ffi::OsString> = None;
    let mut total: u64 = 0;
    let mut files = 0usize;
    for (n, entry) in entries.enumerate() {
        if n >= MAX_ENTRIES {
            return Err(bad(format!("more than {MAX_ENTRIES} entries")));
        }
        let mut entry = entry.map_err(|e| bad(format!("unreadable entry: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| bad(format!("entry with an unreadable name: {e}")))?
            .into_owned();
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(p) => parts.push(p.to_os_string()),
                Component::CurDir => {}
                _ => {
                    return Err(bad(format!(
                        "entry {} leaves the archive's directory",
                        path.display()
                    )))
                }
            }
        }
        let Some(first) = parts.first().cloned() else {
            continue;
        };
        match &top {
            None => top = Some(first),
            Some(t) if *t == first => {}
            Some(_) => {
                return Err(bad(format!(
                    "entry {} is outside the archive's one top directory",
                    path.display()
                )))
            }
        }
        let rel: PathBuf = parts[1..].iter().collect();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            if !rel.as_os_str().is_empty() {
                let p = dest.join(&rel);
                std::fs::create_dir_all(&p).map_err(io(&p))?;
            }
            continue;
        }
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        if !kind.is_file() {
            return Err(bad(format!(
                "entry {} is a {:?}, not a file or directory",
                path.display(),
                kind
            )));
        }
        if rel.as_os_str().is_empty() {
            return Err(bad(format!(
                "entry {} is a file at the top",
                path.display()
            )));
        }
        let size = entry.header().size().unwrap_or(u64::MAX);
        total = total.saturating_add(size);
        if total > MAX_UNPACKED_BYTES {
            return Err(bad(format!(
                "more than {MAX_UNPACKED_BYTES} bytes once unpacked"
            )));
        }
        let p = dest.join(&rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut body = Vec::with_capacity(size.min(1 << 20) as usize);
        entry
            .read_to_end(&mut body)
            .map_err(|e| bad(format!("entry {} is truncated: {e}", path.display())))?;
        if body.len() as u64 != size {
            return Err(bad(format!("entry {} is truncated", path.display())));
        }
        std::fs::write(&p, &body).map_err(io(&p))?;
        files += 1;
    }
    if files == 0 {
        return Err(bad("it holds no files".to_string()));
    }
    // tar stops at its end marker; reading the gzip stream to its end checks the trailer
    // (CRC-32 and length), so an archive cut short after the marker is refused too.
    std::io::copy(&mut tar.into_inner(), &mut std::io::sink())
        .map_err(|e| bad(format!("the compressed stream is damaged: {e}")))?;
    Ok(())
}

/// A CRS tree and the files a config loads from it.
#[derive(Debug, Clone, PartialEq)]
pub struct CrsTree {
    /// The tree's directory.
    pub dir: PathBuf,
    /// The setup file, loaded first.
    pub setup: PathBuf,
    /// `rules/*.conf`, sorted by name, loaded after the setup.
    pub rule_files: Vec<PathBuf>,
    /// Where the rules' data files (`*.data`) are: `rules/`.
    pub data_dir: PathBuf,
}

/// Debian's `modsecurity-crs` package: rules under this directory, setup under `/etc`.
const DEBIAN_DIR: &str = "/usr/share/modsecurity-crs";
const DEBIAN_SETUP: &str = "/etc/modsecurity/crs/crs-setup.conf";

impl CrsTree {
    /// The tree in `dir`. The setup is `setup` when given, else the first that exists of
    /// `crs-setup.conf`, `crs-setup.conf.example`, `rules/crs-setup.conf.example` (and, for
    /// Debian's package directory, `/etc/modsecurity/crs/crs-setup.conf`).
    pub fn locate(dir: &Path, setup: Option<&Path>) -> Result<CrsTree, Error> {
        let rules = dir.join("rules");
        let mut rule_files: Vec<PathBuf> = std::fs::read_dir(&rules)
            .map_err(|e| {
                Error::Missing(format!(
                    "{} holds no *.conf rule file ({e})",
                    rules.display()
                ))
            })?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
            .collect();
        rule_files.sort();
        if rule_files.is_empty() {
            return Err(Error::Missing(format!(
                "{} holds no *.conf rule file",
                rules.display()
            )));
        }
        let setup = match setup {
            Some(s) if s.is_file() => s.to_path_buf(),
            Some(s) => {
                return Err(Error::Missing(format!(
                    "the CRS setup file {} does not exist",
                    s.display()
                )))
            }
            None => {
                let mut candidates = vec![
                    dir.join("crs-setup.conf"),
                    dir.join("crs-setup.conf.example"),
                    rules.join("crs-setup.conf.example"),
                ];
                if dir == Path::new(DEBIAN_DIR) {
                    candidates.push(PathBuf::from(DEBIAN_SETUP));
                }
                candidates
                    .iter()
                    .find(|c| c.is_file())
                    .cloned()
                    .ok_or_else(|| {
                        Error::Missing(format!(
                            "no CRS setup file in {} (looked for crs-setup.conf and crs-setup.conf.example)",
                            dir.display()
                        ))
                    })?
            }
        };
        Ok(CrsTree {
            dir: dir.to_path_buf(),
            setup,
            rule_files,
            data_dir: rules,
        })
    }

    /// Installed version `version` under `versions_dir`, or an error that says how to
    /// install it.
    pub fn installed(versions_dir: &Path, version: &str) -> Result<CrsTree, Error> {
        check_version(version)?;
        let dir = versions_dir.join(version);
        if !dir.is_dir() {
            return Err(Error::Missing(format!(
                "CRS {version} is not installed in {}; run `rampart crs install --version {version}`",
                versions_dir.display()
            )));
        }
        CrsTree::locate(&dir, None).map_err(|e| {
            Error::Missing(format!(
                "CRS {version} in {} is incomplete ({e}); run `rampart crs install --version {version}` again",
                dir.display()
            ))
        })
    }

    /// The files to load, in order: the setup, then the rules.
    pub fn files(&self) -> Vec<PathBuf> {
        std::iter::once(self.setup.clone())
            .chain(self.rule_files.iter().cloned())
            .collect()
    }
}

/// One installed version, as `rampart crs list` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// The version.
    pub version: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Rule files in it (0 when incomplete).
    pub rule_files: usize,
    /// The archive's SHA-256 recorded at install (absent for a tree put there by hand).
    pub sha256: Option<String>,
    /// Where the archive came from.
    pub source: Option<String>,
}

fn version_key(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// Installed versions under `versions_dir`, newest first (none when it does not exist).
pub fn list(versions_dir: &Path) -> Result<Vec<Listed>, Error> {
    let entries = match std::fs::read_dir(versions_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(versions_dir)(e)),
    };
    let mut out = Vec::new();
    for e in entries.filter_map(Result::ok) {
        let Some(version) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if check_version(&version).is_err() || !e.path().is_dir() {
            continue;
        }
        let marker: Option<serde_json::Value> = std::fs::read(e.path().join(MARKER))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let field = |k: &str| {
            marker
                .as_ref()
                .and_then(|m| m.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        out.push(Listed {
            rule_files: CrsTree::locate(&e.path(), None)
                .map(|t| t.rule_files.len())
                .unwrap_or(0),
            sha256: field("sha256"),
            source: field("source"),
            dir: e.path(),
            version,
        });
    }
    out.sort_by_key(|l| std::cmp::Reverse(version_key(&l.version)));
    Ok(out)
}

#[cfg(test)]
mod tests;
