//! The one persistence layer of the workspace: file naming, atomic writes, and tensors + JSON.
//!
//! A saved object (a network, a checkpoint) is a *stem*: `STEM.safetensors` holds its tensors
//! and `STEM.json` its description and provenance. Extensions are **appended** to the stem,
//! never substituted, so `model.v2` becomes `model.v2.safetensors` and `model.v2.json`.
//!
//! Every file is written to a temporary name in the target directory and renamed, so a reader
//! never sees a partial file and an interrupted write leaves the previous file intact.
//! Provenance (seed, configuration, source revision, ...) is free-form JSON kept with the
//! description.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::error::{CondenseError, Result};

/// Free-form metadata stored with a saved object: seed, configuration, git revision, ...
pub type Provenance = BTreeMap<String, serde_json::Value>;

/// The git revision of the working directory (`git describe --always --dirty`), or "unknown"
/// outside a checkout, read when called. A revision with uncommitted changes says so
/// (`-dirty`). Long-running binaries should record the revision they were built from instead
/// (the experiment binaries do, `experiments::BUILD_REVISION`): the tree may move on while
/// they run.
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

/// Builds a [`Provenance`] from `(key, value)` pairs.
pub fn provenance(entries: &[(&str, serde_json::Value)]) -> Provenance {
    entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// `STEM.EXT`: the extension appended to the whole stem (`a.v2` -> `a.v2.json`).
pub fn with_extension(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_os_string();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// The tensor file of a stem, `STEM.safetensors`.
pub fn tensors_path(stem: &Path) -> PathBuf {
    with_extension(stem, "safetensors")
}

/// The description file of a stem, `STEM.json`.
pub fn json_path(stem: &Path) -> PathBuf {
    with_extension(stem, "json")
}

/// A temporary name next to `path` (same directory, so the final rename is atomic), unique
/// to this process.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Creates the parent directory of `path` if it has one.
pub fn create_parent(path: &Path) -> Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|source| CondenseError::Io {
            path: dir.to_path_buf(),
            source,
        }),
        None => Ok(()),
    }
}

/// Runs `write` on a temporary path next to `path`, then renames it to `path`; on failure the
/// temporary file is removed and `path` is untouched.
pub fn replace_atomically<E>(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E>
where
    E: From<CondenseError>,
{
    let tmp = temp_path(path);
    if let Err(e) = write(&tmp) {
        std::fs::remove_file(&tmp).ok();
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|source| {
        std::fs::remove_file(&tmp).ok();
        E::from(CondenseError::Io {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_atomically(path, |tmp| {
        std::fs::write(tmp, bytes).map_err(|source| CondenseError::Io {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// Serializes `value` as pretty JSON into `path` atomically, creating the parent directory.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    create_parent(path)?;
    let text = serde_json::to_string_pretty(value).map_err(|e| CondenseError::Format {
        path: path.to_path_buf(),
        message: format!("cannot serialize: {e}"),
    })?;
    write_atomic(path, text.as_bytes())
}

/// Reads and parses a JSON file, naming the file in errors.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| CondenseError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| CondenseError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Writes `tensors` to `STEM.safetensors` and `json` to `STEM.json`, each atomically (tensors
/// first, so a description never points at tensors that are not there yet).
pub fn save(stem: &Path, tensors: &HashMap<String, Tensor>, json: &impl Serialize) -> Result<()> {
    let tensor_file = tensors_path(stem);
    create_parent(&tensor_file)?;
    replace_atomically(&tensor_file, |tmp| {
        candle_core::safetensors::save(tensors, tmp).map_err(|e| CondenseError::Format {
            path: tensor_file.clone(),
            message: e.to_string(),
        })
    })?;
    write_json(&json_path(stem), json)
}

/// Reads what [`save`] wrote: the tensors (on `device`) and the JSON description. A missing
/// or malformed file is an error naming it.
pub fn load(stem: &Path, device: &Device) -> Result<(HashMap<String, Tensor>, serde_json::Value)> {
    let json: serde_json::Value = read_json(&json_path(stem))?;
    Ok((load_tensors(stem, device)?, json))
}

/// Reads `STEM.safetensors` onto `device`.
pub fn load_tensors(stem: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let tensor_file = tensors_path(stem);
    if !tensor_file.exists() {
        return Err(CondenseError::Io {
            path: tensor_file,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
        });
    }
    candle_core::safetensors::load(&tensor_file, device).map_err(|e| CondenseError::Format {
        path: tensor_file.clone(),
        message: e.to_string(),
    })
}

/// A 64-bit digest (FNV-1a) of named tensors: their names, shapes and values as f32 bits.
/// Names a saved intermediate after the network it started from, so that a rerun finds its
/// own stage and never another run's; stable across builds and platforms.
pub fn digest<'a>(tensors: impl IntoIterator<Item = (&'a String, &'a Tensor)>) -> Result<u64> {
    digest_with("", tensors)
}

/// [`digest`] of a description (settings as text) followed by named tensors.
pub fn digest_with<'a>(text: &str, tensors: impl IntoIterator<Item = (&'a String, &'a Tensor)>) -> Result<u64> {
    const PRIME: u64 = 0x100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(PRIME);
        }
    };
    eat(text.as_bytes());
    for (name, t) in tensors {
        eat(name.as_bytes());
        for d in t.dims() {
            eat(&(*d as u64).to_le_bytes());
        }
        let values = t.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        for v in values {
            eat(&v.to_bits().to_le_bytes());
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_sees_names_shapes_and_values() {
        let t = |v: &[f32], shape: &[usize]| Tensor::from_slice(v, shape, &Device::Cpu).unwrap();
        let one = |name: &str, v: Tensor| digest([(&name.to_string(), &v)]).unwrap();
        let base = one("w", t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]));
        assert_eq!(base, one("w", t(&[1.0, 2.0, 3.0, 4.0], &[2, 2])));
        assert_ne!(base, one("v", t(&[1.0, 2.0, 3.0, 4.0], &[2, 2])));
        assert_ne!(base, one("w", t(&[1.0, 2.0, 3.0, 4.0], &[4, 1])));
        assert_ne!(base, one("w", t(&[1.0, 2.0, 3.0, 4.5], &[2, 2])));
        let w = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
        let named = [(&"w".to_string(), &w)];
        assert_eq!(base, digest_with("", named).unwrap());
        assert_ne!(base, digest_with("lr 0.1", named).unwrap());
    }

    #[test]
    fn a_stem_keeps_its_full_name() {
        let stem = Path::new("runs/model.v2");
        assert_eq!(json_path(stem), Path::new("runs/model.v2.json"));
        assert_eq!(tensors_path(stem), Path::new("runs/model.v2.safetensors"));
        assert_eq!(with_extension(Path::new("a"), "ckpt"), Path::new("a.ckpt"));
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = std::env::temp_dir().join(format!("condense-io-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.json");
        write_atomic(&path, b"old").unwrap();
        let r: Result<()> = replace_atomically(&path, |tmp| {
            std::fs::write(tmp, b"partial").unwrap();
            Err(CondenseError::option("test", "interrupted"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "temporary file left behind"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
