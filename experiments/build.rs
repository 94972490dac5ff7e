//! Records the git revision the binaries are built from as `BUILD_GIT_REVISION`, so that a
//! report names the code that ran, not whatever the working tree holds when it runs.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("..");
    // Rerun when the sources change (dirty or not) or another commit is checked out. Paths
    // that do not exist (a source archive without `.git`) are left out: cargo would rerun
    // the script on every build for them.
    println!("cargo:rerun-if-changed=build.rs");
    for p in [
        "crates",
        "experiments/src",
        "Cargo.lock",
        ".git/HEAD",
        ".git/refs/heads",
        ".git/packed-refs",
    ] {
        let path = root.join(p);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let revision = Command::new("git")
        .current_dir(&root)
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=BUILD_GIT_REVISION={revision}");
}
