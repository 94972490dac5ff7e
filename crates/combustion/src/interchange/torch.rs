//! PyTorch checkpoint files: the zip archive of `torch.save` (PyTorch >= 1.6) and the legacy
//! stream before it, read into a pickled value plus its storages without running anything;
//! and the zip archive written back.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

use super::pickle::{self, DType, NdArray, Out, TensorRef, Value};
use crate::error::{CombustionError, Result};

/// A checkpoint error naming the file and the object inside it.
pub(crate) fn bad(file: &str, path: &str, message: impl Into<String>) -> CombustionError {
    CombustionError::Checkpoint {
        file: file.to_string(),
        path: path.to_string(),
        message: message.into(),
    }
}

/// The largest checkpoint read [bytes].
pub const MAX_CHECKPOINT_BYTES: u64 = 8 << 30;

/// A read checkpoint: the unpickled object and the raw bytes of each storage by key.
pub struct TorchFile {
    /// File name, for errors.
    pub name: String,
    /// The pickled object.
    pub root: Value,
    storages: HashMap<String, Vec<u8>>,
}

/// The magic number that starts a legacy (non-zip) `torch.save` stream, as a pickled int.
const LEGACY_MAGIC: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];

impl TorchFile {
    /// Reads a checkpoint (zip or legacy format). A refused global is an error naming it.
    pub fn read(path: &Path) -> Result<TorchFile> {
        let name = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|_| bad(&name, "/", "file not found"))?;
        if meta.len() > MAX_CHECKPOINT_BYTES {
            return Err(bad(
                &name,
                "/",
                format!("{} bytes is larger than the {MAX_CHECKPOINT_BYTES} read", meta.len()),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| CombustionError::Io {
            path: name.clone(),
            source: e,
        })?;
        if bytes.starts_with(b"PK\x03\x04") {
            read_zip(&name, &bytes)
        } else if bytes.starts_with(&LEGACY_MAGIC) {
            read_legacy(&name, &bytes)
        } else {
            Err(bad(
                &name,
                "/",
                "not a PyTorch checkpoint (neither a torch.save zip archive nor the legacy format)",
            ))
        }
    }

    /// The values of `t` as f64 (floats of any width), row-major, with its shape.
    pub fn tensor(&self, t: &TensorRef, what: &str) -> Result<(Vec<usize>, Vec<f64>)> {
        let raw = self.storages.get(&t.storage.key).ok_or_else(|| {
            bad(
                &self.name,
                what,
                format!("storage '{}' is missing from the archive", t.storage.key),
            )
        })?;
        let size = t.storage.dtype.size();
        if raw.len() < t.storage.numel * size {
            return Err(bad(
                &self.name,
                what,
                format!(
                    "storage '{}' has {} bytes, the checkpoint says {} elements of {size}",
                    t.storage.key,
                    raw.len(),
                    t.storage.numel
                ),
            ));
        }
        let n: usize = t.shape.iter().product();
        if n > 0 {
            let last = t.offset + t.shape.iter().zip(&t.stride).map(|(s, st)| (s - 1) * st).sum::<usize>();
            if last >= t.storage.numel {
                return Err(bad(&self.name, what, "tensor view reaches past its storage"));
            }
        }
        let mut out = Vec::with_capacity(n);
        let mut index = vec![0usize; t.shape.len()];
        for _ in 0..n {
            let at = t.offset + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
            out.push(
                element(t.storage.dtype, &raw[at * size..(at + 1) * size]).ok_or_else(|| {
                    bad(
                        &self.name,
                        what,
                        format!("{:?} tensors are not read (floats only)", t.storage.dtype),
                    )
                })?,
            );
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < t.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok((t.shape.clone(), out))
    }

    /// The values of a tensor or numpy array as f64, with the shape.
    pub fn float_array(&self, v: &Value, what: &str) -> Result<(Vec<usize>, Vec<f64>)> {
        match v {
            Value::Tensor(t) => self.tensor(t, what),
            Value::Array(a) => {
                let a = a.borrow();
                let Some(NdArray {
                    dtype,
                    shape,
                    fortran,
                    data,
                }) = &*a
                else {
                    return Err(bad(&self.name, what, "numpy array without data"));
                };
                if *fortran && shape.len() > 1 {
                    return Err(bad(&self.name, what, "Fortran-ordered numpy arrays are not read"));
                }
                let values = data
                    .chunks_exact(dtype.size())
                    .map(|c| element(*dtype, c))
                    .collect::<Option<Vec<f64>>>()
                    .ok_or_else(|| bad(&self.name, what, format!("{dtype:?} arrays are not read (floats only)")))?;
                Ok((shape.clone(), values))
            }
            other => Err(bad(
                &self.name,
                what,
                format!("expected a tensor or a numpy array, found {}", other.kind()),
            )),
        }
    }
}

fn element(dtype: DType, b: &[u8]) -> Option<f64> {
    Some(match dtype {
        DType::F64 => f64::from_le_bytes(b.try_into().ok()?),
        DType::F32 => f32::from_le_bytes(b.try_into().ok()?) as f64,
        DType::BF16 => f32::from_bits((u16::from_le_bytes(b.try_into().ok()?) as u32) << 16) as f64,
        DType::F16 => half_to_f32(u16::from_le_bytes(b.try_into().ok()?)) as f64,
        _ => return None,
    })
}

fn half_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f32;
    sign * match exp {
        0 => frac * 2f32.powi(-24),
        31 if frac == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

fn unpickle(name: &str, what: &str, bytes: &[u8]) -> Result<(Value, usize)> {
    pickle::read(bytes).map_err(|e| match e {
        pickle::PickleError::Refused(global) => CombustionError::RefusedGlobal {
            file: name.to_string(),
            global,
        },
        other => bad(name, what, other.to_string()),
    })
}

fn read_zip(name: &str, bytes: &[u8]) -> Result<TorchFile> {
    let corrupt = |e: zip::result::ZipError| bad(name, "/", format!("corrupt zip archive: {e}"));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(corrupt)?;
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.map(|c| c.into_owned()))
        .collect::<std::result::Result<_, _>>()
        .map_err(corrupt)?;
    let pkl = names
        .iter()
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .ok_or_else(|| {
            bad(
                name,
                "data.pkl",
                "the archive has no data.pkl (not written by torch.save)",
            )
        })?
        .clone();
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let mut read_entry = |entry: &str, limit: u64| -> Result<Vec<u8>> {
        let mut f = archive.by_name(entry).map_err(corrupt)?;
        if f.size() > limit {
            return Err(bad(
                name,
                entry,
                format!("{} bytes is more than the {limit} read", f.size()),
            ));
        }
        let mut out = Vec::with_capacity(f.size() as usize);
        f.read_to_end(&mut out)
            .map_err(|e| bad(name, entry, format!("corrupt zip entry: {e}")))?;
        Ok(out)
    };
    if let Some(order) = names.iter().find(|n| **n == format!("{prefix}byteorder")) {
        let b = read_entry(order, 16)?;
        if b != b"little" {
            return Err(bad(name, order, "big-endian checkpoints are not read"));
        }
    }
    let data = read_entry(&pkl, pickle::MAX_PICKLE_BYTES as u64)?;
    let (root, _) = unpickle(name, &pkl, &data)?;
    let mut storages = HashMap::new();
    let data_dir = format!("{prefix}data/");
    for entry in names.iter().filter(|n| n.starts_with(&data_dir)) {
        let key = entry[data_dir.len()..].to_string();
        storages.insert(key, read_entry(entry, MAX_CHECKPOINT_BYTES)?);
    }
    Ok(TorchFile {
        name: name.to_string(),
        root,
        storages,
    })
}

/// The legacy stream: magic, protocol, system info, the object, the storage keys, then each
/// storage as an 8-byte element count and its raw bytes, in key order.
fn read_legacy(name: &str, bytes: &[u8]) -> Result<TorchFile> {
    let mut at = LEGACY_MAGIC.len();
    let mut next = |what: &str| -> Result<Value> {
        let (v, used) = unpickle(name, what, &bytes[at..])?;
        at += used;
        Ok(v)
    };
    let protocol = next("protocol version")?;
    if !matches!(protocol, Value::Int(1001)) {
        return Err(bad(name, "protocol version", "legacy protocol version is not 1001"));
    }
    let info = next("system info")?;
    if let Value::Dict(d) = &info {
        let little = d
            .borrow()
            .iter()
            .find(|(k, _)| k.as_str() == Some("little_endian"))
            .map(|(_, v)| matches!(v, Value::Bool(true)));
        if little == Some(false) {
            return Err(bad(name, "system info", "big-endian checkpoints are not read"));
        }
    }
    let root = next("object")?;
    let keys = next("storage keys")?;
    let Value::List(keys) = keys else {
        return Err(bad(name, "storage keys", "not a list"));
    };
    let mut sizes = HashMap::new();
    collect_storages(&root, &mut sizes, 0);
    let mut storages = HashMap::new();
    for k in keys.borrow().iter() {
        let Some(key) = k.as_str() else {
            return Err(bad(name, "storage keys", "a key is not a string"));
        };
        let elem = *sizes
            .get(key)
            .ok_or_else(|| bad(name, &format!("storage {key}"), "listed but not used by any tensor"))?;
        let head = bytes
            .get(at..at + 8)
            .ok_or_else(|| bad(name, &format!("storage {key}"), "truncated file"))?;
        let numel = u64::from_le_bytes(head.try_into().expect("8 bytes")) as usize;
        at += 8;
        let len = numel
            .checked_mul(elem)
            .filter(|l| at + l <= bytes.len())
            .ok_or_else(|| bad(name, &format!("storage {key}"), "truncated file"))?;
        storages.insert(key.to_string(), bytes[at..at + len].to_vec());
        at += len;
    }
    Ok(TorchFile {
        name: name.to_string(),
        root,
        storages,
    })
}

/// Element sizes of the storages `v` refers to, by key.
fn collect_storages(v: &Value, out: &mut HashMap<String, usize>, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        Value::Tensor(t) => {
            out.insert(t.storage.key.clone(), t.storage.dtype.size());
        }
        Value::Tuple(t) => t.iter().for_each(|x| collect_storages(x, out, depth + 1)),
        Value::List(l) => l.borrow().iter().for_each(|x| collect_storages(x, out, depth + 1)),
        Value::Dict(d) => d.borrow().iter().for_each(|(_, x)| collect_storages(x, out, depth + 1)),
        _ => {}
    }
}

/// Writes a `torch.save`-style zip archive: `archive/data.pkl` with `value`, each storage at
/// `archive/data/<key>` (64-byte aligned, uncompressed), `byteorder` and `version`.
pub fn write_zip(path: &Path, archive: &str, value: &Out, storages: &[(String, Vec<u8>)]) -> Result<()> {
    let name = path.display().to_string();
    let io = |e: std::io::Error| CombustionError::Io {
        path: name.clone(),
        source: e,
    };
    let zerr = |e: zip::result::ZipError| CombustionError::Io {
        path: name.clone(),
        source: std::io::Error::other(e.to_string()),
    };
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .last_modified_time(zip::DateTime::default())
            .with_alignment(64);
        let mut put = |entry: String, data: &[u8]| -> Result<()> {
            z.start_file(entry, options).map_err(zerr)?;
            z.write_all(data).map_err(io)
        };
        put(format!("{archive}/data.pkl"), &pickle::write(value))?;
        put(format!("{archive}/byteorder"), b"little")?;
        for (key, data) in storages {
            put(format!("{archive}/data/{key}"), data)?;
        }
        put(format!("{archive}/version"), b"3\n")?;
        z.finish().map_err(zerr)?;
    }
    condense::io::write_atomic(path, &buf.into_inner()).map_err(CombustionError::from)
}
