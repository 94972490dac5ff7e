//! Where a result came from: git revision, seed, configuration, time.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

/// The current git revision (`git describe --always --dirty`), or "unknown" outside a checkout.
pub fn git_revision() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Seconds since the Unix epoch (recorded in reports).
pub fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Serializes `value` as pretty JSON into `path` atomically (temporary file, then rename),
/// creating the parent directory.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory '{}'", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value).context("cannot serialize the report")?;
    condense::mlp::write_atomic(path, text.as_bytes()).with_context(|| format!("cannot write '{}'", path.display()))
}
