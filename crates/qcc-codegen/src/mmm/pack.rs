//! Compile-time packing of constant operands into the order the
//! microkernels read.

use super::div_ceil;

/// Packs an `m × k` matrix (element `(i, kk)` at `src[i * rs + kk * cs]`)
/// into panels of `mr` rows: `[ceil(m/mr)][k][mr]`, rows past `m` zero.
/// Panel `p` starts at `p * k * mr`; inside it, step `kk` holds rows
/// `p*mr .. p*mr + mr` at `kk * mr ..`.
pub fn pack_a(src: &[f32], m: usize, k: usize, rs: usize, cs: usize, mr: usize) -> Vec<f32> {
    let panels = div_ceil(m, mr);
    let mut out = vec![0f32; panels * k * mr];
    for p in 0..panels {
        for kk in 0..k {
            for r in 0..mr {
                let i = p * mr + r;
                if i < m {
                    out[(p * k + kk) * mr + r] = src[i * rs + kk * cs];
                }
            }
        }
    }
    out
}

/// `bias` (or zeros) padded with zeros to a multiple of `mr`.
pub fn pad_bias(bias: Option<&[f32]>, m: usize, mr: usize) -> Vec<f32> {
    let mut out = vec![0f32; div_ceil(m, mr).max(1) * mr];
    if let Some(b) = bias {
        out[..m].copy_from_slice(&b[..m]);
    }
    out
}

/// Packs an `m × k` int8 matrix (element `(i, kk)` at `src[i * rs + kk * cs]`)
/// for the int8 microkernels: panels of `mr` rows, K in groups of four,
/// `[ceil(m/mr)][ceil(k/4)][mr][4]`; rows past `m` and k past `k` are zero.
pub fn pack_k4(src: &[i64], m: usize, k: usize, rs: usize, cs: usize, mr: usize) -> Vec<i8> {
    let (panels, k4) = (div_ceil(m, mr), div_ceil(k, 4));
    let mut out = vec![0i8; panels * k4 * mr * 4];
    for p in 0..panels {
        for q in 0..k4 {
            for r in 0..mr {
                let i = p * mr + r;
                for t in 0..4 {
                    let kk = 4 * q + t;
                    if i < m && kk < k {
                        out[((p * k4 + q) * mr + r) * 4 + t] = src[i * rs + kk * cs] as i8;
                    }
                }
            }
        }
    }
    out
}

/// Packed int8 values that all fit `bits` (4: [-8, 7], two per byte; 2:
/// [-2, 1], four per byte): element `per·j + i` in bits `i·bits ..` of byte
/// `j`, low bits first (a short last byte pads with 0).
/// [`crate::mmm::qconv::unpack_bits`] unpacks them at run time.
pub fn pack_bits(v: &[i8], bits: u32) -> Vec<i8> {
    let (per, mask) = ((8 / bits) as usize, (1u8 << bits) - 1);
    v.chunks(per)
        .map(|p| {
            p.iter()
                .enumerate()
                .fold(0u8, |b, (i, &x)| b | (x as u8 & mask) << (i as u32 * bits)) as i8
        })
        .collect()
}

/// `v` padded with `fill` to a multiple of `mr` (at least `mr`).
pub fn pad_to<T: Copy>(v: &[T], mr: usize, fill: T) -> Vec<T> {
    let mut out = v.to_vec();
    out.resize(div_ceil(v.len(), mr).max(1) * mr, fill);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_bits_fill_low_bits_first() {
        let v = [-8i8, 7, -1, 0, 3];
        assert_eq!(pack_bits(&v, 4), vec![0x78u8 as i8, 0x0f, 0x03]);
        let v = [-2i8, 1, -1, 0, 1];
        assert_eq!(pack_bits(&v, 2), vec![0b0011_0110u8 as i8, 0b01]);
    }

    #[test]
    fn panels_are_zero_padded() {
        // 3 × 2 matrix, row-major.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let p = pack_a(&a, 3, 2, 2, 1, 2);
        // panel 0: k0 -> rows 0,1; k1 -> rows 0,1; panel 1: row 2 and padding
        assert_eq!(p, vec![1.0, 3.0, 2.0, 4.0, 5.0, 0.0, 6.0, 0.0]);
        // The same matrix given transposed (column-major source).
        let t = [1.0, 3.0, 5.0, 2.0, 4.0, 6.0];
        assert_eq!(pack_a(&t, 3, 2, 1, 3, 2), p);
        assert_eq!(
            pad_bias(Some(&[1.0, 2.0, 3.0]), 3, 2),
            vec![1.0, 2.0, 3.0, 0.0]
        );
        assert_eq!(pad_bias(None, 3, 4), vec![0.0; 4]);
    }

    #[test]
    fn k4_panels_group_k_by_four() {
        // 3 × 5 matrix, row-major, in panels of 2 rows.
        let a: Vec<i64> = (1..=15).collect();
        let p = pack_k4(&a, 3, 5, 5, 1, 2);
        #[rustfmt::skip]
        let want: Vec<i8> = vec![
            1, 2, 3, 4, 6, 7, 8, 9, 5, 0, 0, 0, 10, 0, 0, 0, // panel 0
            11, 12, 13, 14, 0, 0, 0, 0, 15, 0, 0, 0, 0, 0, 0, 0, // panel 1
        ];
        assert_eq!(p, want);
        let t: Vec<i64> = (0..15).map(|i| a[(i % 3) * 5 + i / 3]).collect();
        assert_eq!(pack_k4(&t, 3, 5, 1, 3, 2), p);
        assert_eq!(pad_to(&[1, 2, 3], 2, 9), vec![1, 2, 3, 9]);
    }
}
