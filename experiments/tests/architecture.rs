//! The crate boundaries of the workspace, read from `cargo metadata`: data flows one way
//! (mechanism -> integrator -> dataset -> training -> condensation -> evaluation -> report),
//! so the CPU kernels know no tensors or science, the reduction core knows no chemistry, no
//! images and no files of HDF5, the chemistry knows no networks, and no library depends on the
//! binaries or the benchmarks.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Package name -> the names of every package it depends on, directly or not (normal
/// dependencies only), from the resolved dependency graph.
fn dependency_closure() -> BTreeMap<String, BTreeSet<String>> {
    // The host's dependencies only (the lock file also lists other platforms' crates, which
    // are not downloaded).
    let version = Command::new(env!("CARGO")).arg("-vV").output().expect("cargo runs");
    let version = String::from_utf8_lossy(&version.stdout);
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("cargo -vV names the host")
        .to_string();
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            &host,
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let name_of: BTreeMap<String, String> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // Direct normal dependencies of every package, by id.
    let mut direct: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve graph") {
        let deps = node["deps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| d["pkg"].as_str().unwrap().to_string())
            .collect();
        direct.insert(node["id"].as_str().unwrap().to_string(), deps);
    }
    let mut closure = BTreeMap::new();
    for id in direct.keys() {
        let mut seen = BTreeSet::new();
        let mut stack = direct[id].clone();
        while let Some(d) = stack.pop() {
            if seen.insert(d.clone()) {
                stack.extend(direct.get(&d).cloned().unwrap_or_default());
            }
        }
        closure.insert(name_of[id].clone(), seen.iter().map(|d| name_of[d].clone()).collect());
    }
    closure
}

#[test]
fn dependencies_flow_one_way() {
    let deps = dependency_closure();
    let forbidden: [(&str, &[&str]); 7] = [
        (
            "kernels",
            &[
                "candle-core",
                "candle-nn",
                "condense",
                "kinetics",
                "combustion",
                "vision",
                "hdf5-metno",
            ],
        ),
        (
            "condense",
            &[
                "kinetics",
                "combustion",
                "vision",
                "experiments",
                "benches",
                "hdf5-metno",
                "hdf5-metno-sys",
            ],
        ),
        (
            "kinetics",
            &[
                "candle-core",
                "candle-nn",
                "condense",
                "combustion",
                "vision",
                "experiments",
                "benches",
            ],
        ),
        ("combustion", &["vision", "experiments", "benches"]),
        (
            "vision",
            &["kinetics", "combustion", "experiments", "benches", "hdf5-metno"],
        ),
        ("experiments", &["benches"]),
        ("benches", &["experiments"]),
    ];
    let mut broken = Vec::new();
    for (package, banned) in forbidden {
        let d = deps
            .get(package)
            .unwrap_or_else(|| panic!("no package '{package}' in the workspace"));
        for b in banned {
            if d.contains(*b) {
                broken.push(format!("{package} depends on {b}"));
            }
        }
    }
    assert!(broken.is_empty(), "dependency rules broken: {broken:?}");
    // The rules are about something: the allowed edges exist.
    assert!(deps["combustion"].contains("kinetics") && deps["combustion"].contains("condense"));
    assert!(deps["vision"].contains("condense") && deps["condense"].contains("candle-core"));
    assert!(deps["condense"].contains("kernels"));
}
