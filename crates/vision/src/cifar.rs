//! CIFAR-10 in the official binary format, with the standard augmentation.
//!
//! A file is a sequence of 3073-byte records: one label byte (0-9), then 1024 red, 1024
//! green and 1024 blue bytes (32 x 32 planes, row-major). The record count is
//! `file size / 3073`; a size that is not a multiple, or a label above 9, is an error naming
//! the file (and the record).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Result, VisionError};

/// Bytes per record: label + 3 x 32 x 32 pixels.
pub const RECORD_BYTES: usize = 3073;
/// Pixels per image and channel.
pub const PLANE: usize = 32 * 32;
/// Image side [pixels].
pub const SIDE: usize = 32;
/// Class names, label `i` is `CLASSES[i]`.
pub const CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
/// Per-channel mean of the CIFAR-10 training set (RGB, pixel values in [0, 1]).
pub const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// Per-channel standard deviation of the CIFAR-10 training set.
pub const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// Images and labels held as bytes (30,000 images take 92 MB).
#[derive(Clone, Debug, Default)]
pub struct Cifar10 {
    /// `len() * 3072` pixel bytes, CHW per image.
    pub pixels: Vec<u8>,
    /// One label per image, in 0..10.
    pub labels: Vec<u8>,
}

impl Cifar10 {
    /// Reads and concatenates binary batch files, in order.
    pub fn read(paths: &[PathBuf]) -> Result<Self> {
        let mut out = Cifar10::default();
        for path in paths {
            out.append(path)?;
        }
        Ok(out)
    }

    /// The training files `data_batch_*.bin` found in `dir` (sorted), or the test file
    /// `test_batch.bin`. A directory without them is an error naming what was looked for.
    pub fn files(dir: &Path, test: bool) -> Result<Vec<PathBuf>> {
        let entries = std::fs::read_dir(dir).map_err(|source| VisionError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if test {
                    name == "test_batch.bin"
                } else {
                    name.starts_with("data_batch_") && name.ends_with(".bin")
                }
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(VisionError::Format {
                path: dir.to_path_buf(),
                message: format!(
                    "no {} in this directory (CIFAR-10 binary version expected)",
                    if test { "test_batch.bin" } else { "data_batch_*.bin" }
                ),
            });
        }
        Ok(files)
    }

    fn append(&mut self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|source| VisionError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if bytes.is_empty() || bytes.len() % RECORD_BYTES != 0 {
            return Err(VisionError::Format {
                path: path.to_path_buf(),
                message: format!(
                    "size {} bytes is not a positive multiple of the record size {RECORD_BYTES} (truncated or not a CIFAR-10 binary file)",
                    bytes.len()
                ),
            });
        }
        let n = bytes.len() / RECORD_BYTES;
        self.labels.reserve(n);
        self.pixels.reserve(n * 3 * PLANE);
        for (i, rec) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
            if rec[0] > 9 {
                return Err(VisionError::Format {
                    path: path.to_path_buf(),
                    message: format!("record {i}: label {} is not in 0..=9", rec[0]),
                });
            }
            self.labels.push(rec[0]);
            self.pixels.extend_from_slice(&rec[1..]);
        }
        Ok(())
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The first `n` images (all if fewer).
    pub fn head(&self, n: usize) -> Self {
        let n = n.min(self.len());
        Cifar10 {
            pixels: self.pixels[..n * 3 * PLANE].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }

    /// Images `indices` as a normalized `(B, 3, 32, 32)` f32 tensor and `(B,)` u32 labels.
    /// With `augment`, each image is randomly cropped from a 4-pixel zero-padded copy (pad
    /// in normalized space: the padding is the mean colour) and flipped horizontally with
    /// probability 1/2, drawn from an rng seeded by `augment`.
    pub fn batch(&self, indices: &[usize], augment: Option<u64>, device: &Device) -> Result<(Tensor, Tensor)> {
        let (x, labels) = self.pixels(indices, augment, Layout::Nchw)?;
        let b = indices.len();
        Ok((
            Tensor::from_vec(x, (b, 3, SIDE, SIDE), device)?,
            Tensor::from_vec(labels, b, device)?,
        ))
    }

    /// The normalized (and, with `augment`, augmented) pixels of images `indices` in
    /// `layout`, and their labels: what [`Cifar10::batch`] puts in tensors.
    pub fn pixels(&self, indices: &[usize], augment: Option<u64>, layout: Layout) -> Result<(Vec<f32>, Vec<u32>)> {
        let b = indices.len();
        let mut x = vec![0f32; b * 3 * PLANE];
        let mut rng = augment.map(StdRng::seed_from_u64);
        for (slot, &i) in indices.iter().enumerate() {
            if i >= self.len() {
                return Err(VisionError::InvalidOption {
                    name: "image index",
                    message: format!("{i} >= {} images", self.len()),
                });
            }
            let (dy, dx, flip) = match rng.as_mut() {
                Some(r) => (r.random_range(-4i32..=4), r.random_range(-4i32..=4), r.random_bool(0.5)),
                None => (0, 0, false),
            };
            let src = &self.pixels[i * 3 * PLANE..(i + 1) * 3 * PLANE];
            let dst = &mut x[slot * 3 * PLANE..(slot + 1) * 3 * PLANE];
            for c in 0..3 {
                for y in 0..SIDE {
                    for xx in 0..SIDE {
                        let sy = y as i32 + dy;
                        let sx0 = if flip { SIDE - 1 - xx } else { xx } as i32 + dx;
                        let v = if (0..SIDE as i32).contains(&sy) && (0..SIDE as i32).contains(&sx0) {
                            (src[c * PLANE + sy as usize * SIDE + sx0 as usize] as f32 / 255.0 - MEAN[c]) / STD[c]
                        } else {
                            0.0
                        };
                        dst[layout.offset(c, y, xx)] = v;
                    }
                }
            }
        }
        let labels: Vec<u32> = indices.iter().map(|&i| self.labels[i] as u32).collect();
        Ok((x, labels))
    }
}

/// Mirrors every image of a batch of `rows` 32x32x3 images left to right, in place: the
/// second view of flip test-time augmentation.
pub fn flip_horizontal(x: &mut [f32], rows: usize, layout: Layout) {
    debug_assert_eq!(x.len(), rows * 3 * PLANE);
    // Values per pixel within a row: NCHW rows hold one channel, NHWC rows all three.
    let pixel = match layout {
        Layout::Nchw => 1,
        Layout::Nhwc => 3,
    };
    for row in x[..rows * 3 * PLANE].chunks_exact_mut(SIDE * pixel) {
        // Reversing the row reverses the pixels and each pixel's channels; undo the latter.
        row.reverse();
        row.chunks_exact_mut(pixel).for_each(<[f32]>::reverse);
    }
}

/// Cutout (DeVries & Taylor 2017) on a batch of `rows` normalized 32x32x3 images, in place:
/// in each image a `side` x `side` square centred on a uniformly drawn pixel (clipped at
/// the border, so near an edge less is cut) is set to 0, the mean colour in normalized
/// space. The centres are drawn from an rng seeded by `seed`.
pub fn cutout(x: &mut [f32], rows: usize, layout: Layout, side: usize, seed: u64) {
    debug_assert_eq!(x.len(), rows * 3 * PLANE);
    if side == 0 {
        return;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let half = side as i32 / 2;
    for image in x[..rows * 3 * PLANE].chunks_exact_mut(3 * PLANE) {
        let cy = rng.random_range(0..SIDE as i32);
        let cx = rng.random_range(0..SIDE as i32);
        // The square [c - half, c - half + side) clipped to the image.
        let span = |c: i32| (c - half).max(0) as usize..(c - half + side as i32).min(SIDE as i32) as usize;
        for y in span(cy) {
            for xx in span(cx) {
                for c in 0..3 {
                    image[layout.offset(c, y, xx)] = 0.0;
                }
            }
        }
    }
}

/// The order of a batch's pixel values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `(B, C, H, W)`: candle's convolutions.
    Nchw,
    /// `(B, H, W, C)`, channels last: the convolution engine's.
    Nhwc,
}

impl Layout {
    /// Where channel `c` of pixel (`y`, `x`) lies within one 32x32x3 image.
    pub fn offset(self, c: usize, y: usize, x: usize) -> usize {
        match self {
            Layout::Nchw => c * PLANE + y * SIDE + x,
            Layout::Nhwc => (y * SIDE + x) * 3 + c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_records(path: &Path, labels: &[u8]) {
        let mut bytes = Vec::new();
        for (i, &l) in labels.iter().enumerate() {
            bytes.push(l);
            bytes.extend((0..3 * PLANE).map(|p| ((p + i) % 256) as u8));
        }
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn reads_records_and_rejects_malformed_files() {
        let dir = std::env::temp_dir().join(format!("cifar-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("data_batch_1.bin");
        write_records(&good, &[3, 9, 0]);
        let d = Cifar10::read(std::slice::from_ref(&good)).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d.labels, vec![3, 9, 0]);
        assert_eq!(d.pixels[3 * PLANE], 1); // image 1, first byte = (0 + 1) % 256
        assert_eq!(Cifar10::files(&dir, false).unwrap(), vec![good.clone()]);
        assert!(Cifar10::files(&dir, true).is_err());

        let truncated = dir.join("trunc.bin");
        std::fs::write(&truncated, vec![0u8; RECORD_BYTES + 5]).unwrap();
        let e = Cifar10::read(&[truncated]).unwrap_err().to_string();
        assert!(e.contains("trunc.bin") && e.contains("multiple"), "{e}");

        let bad_label = dir.join("label.bin");
        write_records(&bad_label, &[1, 12]);
        let e = Cifar10::read(&[bad_label]).unwrap_err().to_string();
        assert!(e.contains("record 1") && e.contains("12"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn flipping_mirrors_each_row_in_both_layouts() {
        let mut d = Cifar10::default();
        for i in 0..2u8 {
            d.labels.push(i);
            d.pixels
                .extend((0..3 * PLANE).map(|p| ((p * 7 + i as usize) % 253) as u8));
        }
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let (x, _) = d.pixels(&[0, 1], None, layout).unwrap();
            let mut f = x.clone();
            flip_horizontal(&mut f, 2, layout);
            let at = |b: usize, c: usize, y: usize, xx: usize| b * 3 * PLANE + layout.offset(c, y, xx);
            for b in 0..2 {
                for c in 0..3 {
                    for y in [0, 13, 31] {
                        for xx in [0, 5, 31] {
                            assert_eq!(f[at(b, c, y, xx)], x[at(b, c, y, SIDE - 1 - xx)]);
                        }
                    }
                }
            }
            assert_ne!(f, x);
            flip_horizontal(&mut f, 2, layout);
            assert_eq!(f, x);
        }
    }

    #[test]
    fn cutout_blanks_one_clipped_square_per_image_and_is_seeded() {
        let mut d = Cifar10::default();
        for i in 0..8u8 {
            d.labels.push(i);
            // Every normalized value is far from 0, so the cut pixels are exactly the zeros.
            d.pixels
                .extend((0..3 * PLANE).map(|p| if (p + i as usize) % 2 == 0 { 0 } else { 255 }));
        }
        let rows: Vec<usize> = (0..8).collect();
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let (x, _) = d.pixels(&rows, None, layout).unwrap();
            assert!(x.iter().all(|v| v.abs() > 0.1));
            let mut a = x.clone();
            cutout(&mut a, 8, layout, 16, 7);
            let mut b = x.clone();
            cutout(&mut b, 8, layout, 16, 7);
            assert_eq!(a, b, "the same seed cuts the same squares");
            let mut other = x.clone();
            cutout(&mut other, 8, layout, 16, 8);
            assert_ne!(a, other, "another seed cuts elsewhere");
            let mut whole = x.clone();
            cutout(&mut whole, 8, layout, 0, 7);
            assert_eq!(whole, x, "side 0 cuts nothing");
            for img in 0..8 {
                let at = |c: usize, y: usize, xx: usize| img * 3 * PLANE + layout.offset(c, y, xx);
                // The cut pixels form one axis-aligned rectangle, equal in every channel,
                // at most 16 on a side and at least 8 (the centre lies inside the image).
                let cut: Vec<(usize, usize)> = (0..SIDE)
                    .flat_map(|y| (0..SIDE).map(move |xx| (y, xx)))
                    .filter(|&(y, xx)| a[at(0, y, xx)] == 0.0)
                    .collect();
                for &(y, xx) in &cut {
                    assert!((0..3).all(|c| a[at(c, y, xx)] == 0.0));
                }
                let (y0, y1) = (
                    cut.iter().map(|p| p.0).min().unwrap(),
                    cut.iter().map(|p| p.0).max().unwrap(),
                );
                let (x0, x1) = (
                    cut.iter().map(|p| p.1).min().unwrap(),
                    cut.iter().map(|p| p.1).max().unwrap(),
                );
                let (h, w) = (y1 - y0 + 1, x1 - x0 + 1);
                assert_eq!(cut.len(), h * w, "image {img}: a filled rectangle");
                assert!((8..=16).contains(&h) && (8..=16).contains(&w), "image {img}: {h} x {w}");
                // Outside the square nothing changed.
                for c in 0..3 {
                    for y in 0..SIDE {
                        for xx in 0..SIDE {
                            if !(y0..=y1).contains(&y) || !(x0..=x1).contains(&xx) {
                                assert_eq!(a[at(c, y, xx)], x[at(c, y, xx)]);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn batches_are_normalized_and_augmentation_is_seeded() {
        let mut d = Cifar10::default();
        for i in 0..4u8 {
            d.labels.push(i);
            d.pixels.extend((0..3 * PLANE).map(|p| (p % 251) as u8));
        }
        let dev = Device::Cpu;
        let (x, y) = d.batch(&[2, 0], None, &dev).unwrap();
        assert_eq!(x.dims(), &[2, 3, 32, 32]);
        assert_eq!(y.to_vec1::<u32>().unwrap(), vec![2, 0]);
        let v: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        assert!((v[0] - (0.0 - MEAN[0]) / STD[0]).abs() < 1e-6);
        let (a, _) = d.batch(&[0, 1, 2, 3], Some(7), &dev).unwrap();
        let (b, _) = d.batch(&[0, 1, 2, 3], Some(7), &dev).unwrap();
        let (c, _) = d.batch(&[0, 1, 2, 3], Some(8), &dev).unwrap();
        let diff =
            |p: &Tensor, q: &Tensor| -> f32 { (p - q).unwrap().abs().unwrap().sum_all().unwrap().to_scalar().unwrap() };
        assert_eq!(diff(&a, &b), 0.0);
        assert!(diff(&a, &c) > 0.0);
    }
}
