//! MaxPool on i8/u8, QAvgPool and QMean run natively and compared bit for
//! bit with a naive reference built on `qcc_ir::quant` (and with the
//! interpreter): pads, strides, dilations, ceil_mode, 1-D/2-D/3-D, long
//! rows (chunked scratch), saturation and windows with no input cell.

mod common;
mod quant_common;
use qcc_ir::{DType, Op, PoolAttrs, Rescale};
use quant_common::*;

fn pool(k: &[usize], s: &[usize], pads: &[usize], d: &[usize], ceil: bool) -> PoolAttrs {
    PoolAttrs {
        kernel: k.to_vec(),
        strides: s.to_vec(),
        pads: pads.to_vec(),
        dilations: d.to_vec(),
        ceil_mode: ceil,
        count_include_pad: true,
    }
}

#[test]
fn int_maxpool_matches_the_reference() {
    let cases = [
        (
            vec![2, 3, 9, 11],
            pool(&[3, 3], &[2, 2], &[1, 1, 1, 1], &[1, 1], false),
        ),
        (
            vec![1, 2, 10, 7],
            pool(&[2, 3], &[2, 1], &[0, 1, 1, 2], &[2, 1], true),
        ),
        (vec![1, 4, 300], pool(&[5], &[1], &[2, 2], &[1], false)),
        (
            vec![1, 2, 4, 5, 6],
            pool(
                &[2, 2, 3],
                &[1, 2, 2],
                &[1, 0, 1, 0, 1, 1],
                &[1, 1, 1],
                true,
            ),
        ),
        // Windows entirely in the padding: the type's minimum.
        (vec![1, 1, 3], pool(&[2], &[3], &[3, 3], &[1], false)),
    ];
    for (i, (xs, p)) in cases.into_iter().enumerate() {
        for dt in [DType::I8, DType::U8] {
            let x = rand_t8(dt, &xs, i as u64 + 1);
            let (g, inputs) = op_graph(Op::MaxPool(p.clone()), vec![Arg::In(x.clone())]);
            let want = expect(&g, &ref_pool(&p, &x, &out_ty(&g).shape, None));
            check_exact(&g, &inputs, &want, &format!("maxpool case {i} {dt}"));
        }
    }
}

#[test]
fn qavgpool_sums_centered_cells_then_rescales() {
    let cases = [
        // count_include_pad with padding: 9 cells per window.
        (
            vec![2, 3, 7, 8],
            pool(&[3, 3], &[1, 2], &[1, 1, 1, 1], &[1, 1], false),
            9,
        ),
        // Global-like 2-D without padding.
        (
            vec![1, 5, 6, 6],
            pool(&[6, 6], &[1, 1], &[0; 4], &[1, 1], false),
            36,
        ),
        // A long 1-D row: 600 outputs, chunked.
        (vec![1, 2, 603], pool(&[4], &[1], &[0, 0], &[1], false), 4),
        // Dilated, strided 1-D with padding.
        (vec![2, 2, 31], pool(&[3], &[3], &[2, 2], &[2], false), 3),
    ];
    for (i, (xs, p, count)) in cases.into_iter().enumerate() {
        for (dt, zp) in [(DType::I8, -5), (DType::U8, 131)] {
            let x = rand_t8(dt, &xs, 40 + i as u64);
            for r in [
                Rescale::fixed_point(1.0 / count as f64).unwrap(),
                Rescale::fixed_point(3.0 / count as f64).unwrap(),
                Rescale::pow2(1.0 / count as f64).unwrap(),
            ] {
                let e = epi(r, zp, dt);
                let op = Op::QAvgPool {
                    pool: p.clone(),
                    x_zero_point: zp,
                    epi: e.clone(),
                };
                let (g, inputs) = op_graph(op, vec![Arg::In(x.clone())]);
                let want = ref_pool(&p, &x, &out_ty(&g).shape, Some((zp, &e)));
                let want = expect(&g, &want);
                check_exact(&g, &inputs, &want, &format!("qavgpool case {i} {dt}"));
            }
        }
    }
}

#[test]
fn qmean_over_axes() {
    let cases: [(&[usize], &[usize], bool); 5] = [
        (&[2, 3, 5, 7], &[2, 3], true),
        (&[2, 3, 5, 7], &[1], false),
        (&[4, 9], &[0, 1], false),
        (&[3, 4, 5], &[0, 2], true),
        (&[6, 1, 300], &[2], true),
    ];
    for (i, (xs, axes, keepdims)) in cases.into_iter().enumerate() {
        for (dt, zp) in [(DType::I8, 3), (DType::U8, 100)] {
            let x = rand_t8(dt, xs, 70 + i as u64);
            let count: usize = axes.iter().map(|&a| xs[a]).product();
            for r in [
                Rescale::fixed_point(1.0 / count as f64).unwrap(),
                Rescale::fixed_point(2.5 / count as f64).unwrap(),
            ] {
                let e = epi(r, zp, dt);
                let op = Op::QMean {
                    axes: axes.to_vec(),
                    keepdims,
                    x_zero_point: zp,
                    epi: e.clone(),
                };
                let (g, inputs) = op_graph(op, vec![Arg::In(x.clone())]);
                let want = expect(&g, &ref_qmean(&x, axes, zp, &e));
                check_exact(&g, &inputs, &want, &format!("qmean case {i} {dt}"));
            }
        }
    }
}
