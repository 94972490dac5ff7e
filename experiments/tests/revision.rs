//! The revision the binaries record is the commit they were built from.

use std::process::Command;

#[test]
fn build_revision_names_the_checked_out_commit() {
    let head = Command::new("git")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        // Built and tested from one checkout: a new commit reruns the build script.
        Some(head) => assert!(
            experiments::BUILD_REVISION.contains(&head),
            "built from {}, HEAD is {head}",
            experiments::BUILD_REVISION
        ),
        None => assert_eq!(experiments::BUILD_REVISION, "unknown"),
    }
}
