//! Index arithmetic shared by the ops: strided offset iteration (broadcasting,
//! transposition, slicing), gathering elements by offset, and unravelling a
//! flat index into coordinates.

use qcc_ir::{broadcast_strides, numel};

/// Iterates, in row-major order over `shape`, the offsets `base + Σ idx[d] * strides[d]`.
pub struct Offsets {
    shape: Vec<usize>,
    strides: Vec<i64>,
    idx: Vec<usize>,
    off: i64,
    remaining: usize,
}

impl Offsets {
    /// `strides` must have one entry per dim of `shape`.
    pub fn new(shape: &[usize], strides: &[i64], base: i64) -> Offsets {
        debug_assert_eq!(shape.len(), strides.len());
        Offsets {
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            idx: vec![0; shape.len()],
            off: base,
            remaining: numel(shape),
        }
    }

    /// Offsets into a tensor of shape `from` read as if broadcast to shape `to`.
    pub fn broadcast(from: &[usize], to: &[usize]) -> Offsets {
        let s: Vec<i64> = broadcast_strides(from, to)
            .into_iter()
            .map(|x| x as i64)
            .collect();
        Offsets::new(to, &s, 0)
    }
}

impl Iterator for Offsets {
    type Item = i64;

    fn next(&mut self) -> Option<i64> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let cur = self.off;
        for d in (0..self.shape.len()).rev() {
            self.idx[d] += 1;
            self.off += self.strides[d];
            if self.idx[d] < self.shape[d] {
                break;
            }
            self.off -= self.strides[d] * self.shape[d] as i64;
            self.idx[d] = 0;
        }
        Some(cur)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

/// Row-major strides as signed numbers, for [`Offsets`].
pub fn signed_strides(shape: &[usize]) -> Vec<i64> {
    qcc_ir::strides_of(shape)
        .into_iter()
        .map(|x| x as i64)
        .collect()
}

/// The elements of `v` at the given offsets; an error if one is out of range.
pub fn take<T: Copy>(v: &[T], offsets: impl Iterator<Item = i64>) -> Result<Vec<T>, String> {
    let mut out = Vec::with_capacity(offsets.size_hint().0);
    for o in offsets {
        let x = usize::try_from(o)
            .ok()
            .and_then(|o| v.get(o))
            .ok_or_else(|| format!("internal: offset {o} outside a tensor of {}", v.len()))?;
        out.push(*x);
    }
    Ok(out)
}

/// Writes the coordinates of row-major flat index `flat` in `shape` into `coords`.
/// Dims of size 0 yield coordinate 0.
pub fn unravel(mut flat: usize, shape: &[usize], coords: &mut [usize]) {
    for d in (0..shape.len()).rev() {
        let n = shape[d].max(1);
        coords[d] = flat % n;
        flat /= n;
    }
}

/// Product of dims, `None` on overflow.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// `(outer, dim, inner)` sizes around `axis`: the products of the dims before, at and after it.
pub fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = numel(&shape[..axis.min(shape.len())]);
    let dim = shape.get(axis).copied().unwrap_or(1);
    let inner = numel(shape.get(axis + 1..).unwrap_or(&[]));
    (outer, dim, inner)
}
