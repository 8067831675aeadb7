//! `rampart crs install|list`: fetches an OWASP CRS release archive and installs it with
//! `rampart_crs` (which checks and unpacks it; nothing here touches the disk).

use std::path::PathBuf;
use std::time::Duration;

/// What `crs install` was asked for.
pub struct InstallArgs {
    pub version: String,
    pub dir: Option<PathBuf>,
    pub sha256: Option<String>,
    pub url: Option<String>,
    pub mirror: Option<String>,
}

/// Installs, returning the lines to print.
pub fn install(a: InstallArgs) -> Result<Vec<String>, String> {
    // Checked before any download: an unknown version without --sha256 fetches nothing.
    let expected =
        rampart_crs::expected_sha256(&a.version, a.sha256.as_deref()).map_err(|e| e.to_string())?;
    let url = match (a.url, a.mirror) {
        (Some(u), _) => u,
        (None, m) => {
            let mirror = m
                .or_else(|| std::env::var("RAMPART_CRS_MIRROR").ok())
                .unwrap_or_else(|| rampart_crs::DEFAULT_MIRROR.to_string());
            rampart_crs::archive_url(&mirror, &a.version)
        }
    };
    let dir = a.dir.unwrap_or_else(rampart_crs::versions_dir);
    let archive = fetch(&url)?;
    let done = rampart_crs::install(&archive, &expected, &a.version, &dir, &url)
        .map_err(|e| e.to_string())?;
    Ok(vec![format!(
        "CRS {} installed in {} ({} rule files, SHA-256 {expected}{})",
        a.version,
        done.dir.display(),
        done.rule_files,
        if done.replaced {
            ", replacing the earlier install"
        } else {
            ""
        }
    )])
}

/// The archive's bytes, at most `MAX_ARCHIVE_BYTES`; a file path or `file://` is read.
fn fetch(url: &str) -> Result<Vec<u8>, String> {
    let cap = rampart_crs::MAX_ARCHIVE_BYTES;
    if let Some(path) = url
        .strip_prefix("file://")
        .or_else(|| (!url.contains("://")).then_some(url))
    {
        let meta = std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?;
        if meta.len() > cap {
            return Err(format!(
                "{path}: larger than {cap} bytes; not a CRS release archive"
            ));
        }
        return std::fs::read(path).map_err(|e| format!("{path}: {e}"));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| format!("cannot start the HTTP client: {e}"))?;
        let mut resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("cannot fetch {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("cannot fetch {url}: HTTP {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("cannot fetch {url}: {e}"))?
        {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > cap {
                return Err(format!(
                    "{url}: larger than {cap} bytes; not a CRS release archive"
                ));
            }
        }
        Ok(body)
    })
}

/// The installed versions, newest first.
pub fn list(dir: Option<PathBuf>) -> Result<Vec<String>, String> {
    let dir = dir.unwrap_or_else(rampart_crs::versions_dir);
    let found = rampart_crs::list(&dir).map_err(|e| e.to_string())?;
    if found.is_empty() {
        return Ok(vec![format!(
            "no CRS installed in {}; run `rampart crs install`",
            dir.display()
        )]);
    }
    Ok(found
        .into_iter()
        .map(|l| {
            let state = if l.rule_files == 0 {
                "incomplete".to_string()
            } else {
                format!("{} rule files", l.rule_files)
            };
            format!(
                "{}\t{}\t{state}\tsha256 {}",
                l.version,
                l.dir.display(),
                l.sha256
                    .as_deref()
                    .unwrap_or("unknown (not installed by rampart)")
            )
        })
        .collect())
}
