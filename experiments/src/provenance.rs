//! Where a result came from: the git revision of the code that produced it.

/// The current git revision (`git describe --always --dirty`), or "unknown" outside a checkout.
/// A report written from a revision with uncommitted changes says so (`-dirty`).
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
