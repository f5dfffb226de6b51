//! Resize's coordinate rules, shared by the interpreter and the backend so
//! both map output coordinates to the same input coordinates, bit for bit.

use crate::op::{CoordTransform, NearestMode, ResizeAttrs, ResizeMode};

/// The resized length `length_resized` that the coordinate transforms divide
/// by: `len_in * scale`, which is fractional when the model gave scales that
/// do not divide evenly (ONNX: "output_width … can be fractional when
/// calculated with scale factor"; `test_resize_downsample_scales_linear_align_corners`
/// depends on it). When that product is within a few ulps of the integer
/// output size — always the case when the model gave sizes, since the importer
/// then sets `scale = size / len_in` — the integer is used, so that f32
/// rounding of `size / len_in * len_in` cannot move a coordinate.
///
/// onnxruntime (CPU and CUDA) instead always uses the integer output size here,
/// and lists that ONNX test as a known mismatch; the two agree whenever
/// `len_in * scale` is an integer.
pub fn resized_length(len_in: usize, scale: f32, len_out: usize) -> f32 {
    let exact = len_in as f32 * scale;
    let int = len_out as f32;
    if (exact - int).abs() <= int * (4.0 * f32::EPSILON) {
        int
    } else {
        exact
    }
}

/// Input coordinate of output coordinate `x` along a dim of `len_in` →
/// `len_out` with `scale` (ONNX `coordinate_transformation_mode`).
///
/// Evaluated in f32 with the operation order of the ONNX formulas (as
/// onnxruntime and the ONNX reference do), so that rounding ties such as
/// `1 / (2/3) = 1.5` land where they do there. As in the ONNX spec,
/// align_corners and pytorch_half_pixel use the possibly fractional
/// `len_resized`; half_pixel_symmetric compares the integer `len_out` with
/// the unsnapped `scale * len_in`.
pub fn source_coord(
    ct: CoordTransform,
    x: usize,
    scale: f32,
    len_in: usize,
    len_out: usize,
) -> f32 {
    let len_resized = resized_length(len_in, scale, len_out);
    let x = x as f32;
    let li = len_in as f32;
    match ct {
        CoordTransform::HalfPixel => (x + 0.5) / scale - 0.5,
        CoordTransform::PytorchHalfPixel => {
            if len_resized > 1.0 {
                (x + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        CoordTransform::AlignCorners => {
            if len_resized == 1.0 {
                0.0
            } else {
                x * (li - 1.0) / (len_resized - 1.0)
            }
        }
        CoordTransform::Asymmetric => x / scale,
        CoordTransform::HalfPixelSymmetric => {
            let adjustment = len_out as f32 / (scale * li);
            let center = li / 2.0;
            let offset = center * (1.0 - adjustment);
            offset + (x + 0.5) / scale - 0.5
        }
    }
}

/// Rounds an input coordinate to an index as nearest mode does.
pub fn round_nearest(mode: NearestMode, x: f32) -> f32 {
    let tie = x - x.floor() == 0.5;
    match mode {
        NearestMode::RoundPreferFloor if tie => x.floor(),
        NearestMode::RoundPreferCeil if tie => x.ceil(),
        NearestMode::RoundPreferFloor | NearestMode::RoundPreferCeil => x.round(),
        NearestMode::Floor => x.floor(),
        NearestMode::Ceil => x.ceil(),
    }
}

/// One output coordinate's cubic taps along a dim: four source indices (in
/// the input) and their weights.
pub type CubicTaps = ([usize; 4], [f32; 4]);

/// Cubic interpolation along dim `d` of a Resize from `len_in` to
/// `len_out` (mode [`ResizeMode::Cubic`]; `None` for other modes or an
/// empty input): for output coordinate `x` at source coordinate `s`
/// ([`source_coord`]), the taps `⌊s⌋-1 … ⌊s⌋+2` with Keys' weights for the
/// distances `1+t, t, 1-t, 2-t` (`t = s - ⌊s⌋`, in f64). Taps outside the
/// input read its edge (ONNX pads with the edge values), or with
/// `exclude_outside` weigh 0 and the rest are divided by their sum.
pub fn cubic_taps(
    r: &ResizeAttrs,
    d: usize,
    len_in: usize,
    len_out: usize,
) -> Option<Vec<CubicTaps>> {
    let ResizeMode::Cubic { a, exclude_outside } = r.mode else {
        return None;
    };
    if len_in == 0 {
        return None;
    }
    let a = a as f64;
    // Keys' kernel at distance `u` in [0, 2].
    let near = |u: f64| ((a + 2.0) * u - (a + 3.0)) * u * u + 1.0;
    let far = |u: f64| ((a * u - 5.0 * a) * u + 8.0 * a) * u - 4.0 * a;
    let taps = (0..len_out)
        .map(|x| {
            let s = source_coord(r.coord, x, r.scales[d], len_in, len_out) as f64;
            let s = if s.is_nan() { 0.0 } else { s };
            let f = s.floor();
            let t = s - f;
            let mut w = [far(1.0 + t), near(t), near(1.0 - t), far(2.0 - t)];
            let mut idx = [0usize; 4];
            for (k, i) in idx.iter_mut().enumerate() {
                let j = f + k as f64 - 1.0;
                let inside = j >= 0.0 && j < len_in as f64;
                if exclude_outside && !inside {
                    w[k] = 0.0;
                }
                *i = j.clamp(0.0, (len_in - 1) as f64) as usize;
            }
            if exclude_outside {
                let sum: f64 = w.iter().sum();
                if sum != 0.0 {
                    w.iter_mut().for_each(|v| *v /= sum);
                }
            }
            (idx, w.map(|v| v as f32))
        })
        .collect();
    Some(taps)
}

/// Whether cubic taps map every output coordinate to its own input
/// coordinate with weight 1 (a dim that is not resized).
pub fn cubic_is_identity(taps: &[CubicTaps], len_in: usize) -> bool {
    taps.len() == len_in
        && taps.iter().enumerate().all(|(x, (idx, w))| {
            (0..4).all(|k| {
                if w[k] == 0.0 {
                    true
                } else {
                    idx[k] == x && w[k] == 1.0
                }
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinate_transforms() {
        use CoordTransform::*;
        assert_eq!(source_coord(HalfPixel, 0, 2.0, 4, 8), -0.25);
        assert_eq!(source_coord(HalfPixel, 3, 2.0, 4, 8), 1.25);
        assert_eq!(source_coord(PytorchHalfPixel, 0, 0.25, 4, 1), 0.0);
        assert_eq!(source_coord(AlignCorners, 7, 2.0, 4, 8), 3.0);
        assert_eq!(source_coord(AlignCorners, 0, 0.25, 4, 1), 0.0);
        assert_eq!(source_coord(Asymmetric, 3, 2.0, 4, 8), 1.5);
        // Integral sizes: half_pixel_symmetric equals half_pixel.
        assert_eq!(source_coord(HalfPixelSymmetric, 3, 2.0, 4, 8), 1.25);
    }

    #[test]
    fn nearest_rounding() {
        use NearestMode::*;
        assert_eq!(round_nearest(RoundPreferFloor, 1.5), 1.0);
        assert_eq!(round_nearest(RoundPreferCeil, 1.5), 2.0);
        assert_eq!(round_nearest(RoundPreferFloor, 1.6), 2.0);
        assert_eq!(round_nearest(Floor, 1.9), 1.0);
        assert_eq!(round_nearest(Ceil, 1.1), 2.0);
    }
}
