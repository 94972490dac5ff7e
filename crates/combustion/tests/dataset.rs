//! Reaction data on HDF5: round trip, interoperability, bad files, determinism, shards.

use std::path::{Path, PathBuf};

use combustion::generate::GenerateConfig;
use combustion::{generate, merge, read_scalar_fields, CombustionError, ReactionDataset};
use kinetics::Mechanism;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("combustion-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn small_config(seed: u64) -> GenerateConfig {
    GenerateConfig {
        trajectories: 6,
        samples_per_trajectory: 12,
        seed,
        ..GenerateConfig::for_fuel("H2:1")
    }
}

fn small_set(seed: u64, shard: (usize, usize)) -> ReactionDataset {
    let mech = Mechanism::embedded_h2o2().unwrap();
    generate(&mech, "embedded:h2o2", &small_config(seed), shard, &|_, _| {})
        .unwrap()
        .0
}

#[test]
fn write_read_round_trip() {
    let mech = Mechanism::embedded_h2o2().unwrap();
    let (set, summary) = generate(&mech, "embedded:h2o2", &small_config(3), (0, 1), &|_, _| {}).unwrap();
    assert_eq!(summary.trajectories, 6);
    assert_eq!(summary.sampled, 6 * 12);
    assert_eq!(summary.labeled + summary.dropped, summary.sampled + summary.augmented);
    assert!(summary.labeled > 100);
    let dir = temp_dir("roundtrip");
    let path = dir.join("set.h5");
    set.write(&path).unwrap();
    let back = ReactionDataset::read(&path, Some(&mech)).unwrap();
    assert_eq!(back, set);
    assert_eq!(back.sampled.len(), 12);
    assert_eq!(back.sampled[0].nrows(), 6);
    assert!(back.trajectory.windows(2).all(|w| w[0] <= w[1]));
    // Labels are real: the states moved.
    let moved = (&back.state_out - &back.state_in).mapv(f64::abs).sum();
    assert!(moved > 0.0);
    assert!(
        std::fs::read_dir(&dir)
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().contains("tmp")),
        "no temporary file left"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn reads_the_h5py_fixture_in_numeric_order() {
    let mech = Mechanism::embedded_h2o2().unwrap();
    let path = root().join("data/fixtures/dfode_h2_sample.h5");
    let f = read_scalar_fields(&path, Some(&mech)).unwrap();
    assert_eq!(f.mechanism, "h2o2.yaml");
    let names: Vec<&str> = f.fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["1e-05", "2e-05", "3e-05", "4e-05", "5e-05", "6e-05", "7e-05", "8e-05", "9e-05", "0.0001", "0.00011"]
    );
    let all = f.stacked();
    assert_eq!(all.dim(), (220, 12));
    for row in all.rows() {
        assert!((row.slice(ndarray::s![2..]).sum() - 1.0).abs() < 1e-12);
    }
    // T0 = 1000..1400 K: at the first time every row is still near its start.
    let first = &f.fields[0].1;
    assert!(first.column(0).iter().all(|t| (990.0..1500.0).contains(t)));
    // Read as a labeled set, the missing group is named.
    let err = ReactionDataset::read(&path, None).unwrap_err();
    assert!(err.to_string().contains("labels"), "{err}");
}

#[test]
fn bad_files_name_the_file_and_the_object() {
    let dir = temp_dir("bad");
    let good = small_set(1, (0, 1));

    let missing = dir.join("missing.h5");
    let err = ReactionDataset::read(&missing, None).unwrap_err();
    assert!(
        err.to_string().contains("missing.h5") && err.to_string().contains("not found"),
        "{err}"
    );

    let garbage = dir.join("garbage.h5");
    std::fs::write(&garbage, b"this is not hdf5").unwrap();
    let err = ReactionDataset::read(&garbage, None).unwrap_err();
    assert!(
        matches!(err, CombustionError::Hdf5 { .. }) && err.to_string().contains("garbage.h5"),
        "{err}"
    );

    // NaN and negative mass fractions.
    for (name, value, needle) in [("nan.h5", f64::NAN, "NaN"), ("negative.h5", -0.2, "-0.2")] {
        let mut bad = good.clone();
        bad.state_in[[3, 4]] = value;
        let p = dir.join(name);
        bad.write(&p).unwrap();
        let err = ReactionDataset::read(&p, None).unwrap_err().to_string();
        assert!(
            err.contains(name) && err.contains("labels/state_in") && err.contains("row 3") && err.contains(needle),
            "{err}"
        );
    }

    // Species that do not match the mechanism.
    let p = dir.join("species.h5");
    good.write(&p).unwrap();
    let drm19 = Mechanism::from_file(root().join("data/mechanisms/drm19.yaml")).unwrap();
    let err = ReactionDataset::read(&p, Some(&drm19)).unwrap_err().to_string();
    assert!(
        err.contains("species.h5") && err.contains("species_names") && err.contains("do not match"),
        "{err}"
    );

    // Wrong column count, written by hand.
    let p = dir.join("columns.h5");
    {
        let f = hdf5::File::create(&p).unwrap();
        f.new_attr::<hdf5::types::VarLenUnicode>()
            .create("mechanism")
            .unwrap()
            .write_scalar(&"x".parse::<hdf5::types::VarLenUnicode>().unwrap())
            .unwrap();
        let names: Vec<hdf5::types::VarLenUnicode> =
            ["T", "p", "H2", "O2"].iter().map(|s| s.parse().unwrap()).collect();
        f.new_attr_builder().with_data(&names).create("species_names").unwrap();
        let g = f.create_group("scalar_fields").unwrap();
        g.new_dataset_builder()
            .with_data(&ndarray::Array2::<f64>::ones((3, 5)))
            .create("0")
            .unwrap();
    }
    let err = read_scalar_fields(&p, None).unwrap_err().to_string();
    assert!(
        err.contains("columns.h5") && err.contains("scalar_fields/0") && err.contains("shape"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn generation_is_deterministic_to_the_byte_and_shards_merge_back() {
    let dir = temp_dir("determinism");
    let (a, b, m) = (dir.join("a.h5"), dir.join("b.h5"), dir.join("merged.h5"));
    small_set(7, (0, 1)).write(&a).unwrap();
    small_set(7, (0, 1)).write(&b).unwrap();
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "same arguments, same bytes"
    );
    let parts = [small_set(7, (1, 3)), small_set(7, (0, 3)), small_set(7, (2, 3))];
    let merged = merge(&parts).unwrap();
    merged.write(&m).unwrap();
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&m).unwrap(),
        "merged shards equal the unsharded run"
    );
    // A different seed gives different data; an incomplete or mixed set of shards is refused.
    assert_ne!(
        small_set(8, (0, 1)).state_in,
        ReactionDataset::read(&a, None).unwrap().state_in
    );
    assert!(merge(&parts[..2]).is_err());
    assert!(merge(&[small_set(7, (0, 2)), small_set(8, (1, 2))]).is_err());
    std::fs::remove_dir_all(dir).ok();
}
