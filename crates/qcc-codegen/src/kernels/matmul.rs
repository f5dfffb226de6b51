//! Gemm (`alpha * op(A) @ op(B) + beta * C`, C broadcast to `[M,N]`) and
//! MatMul (numpy batch broadcasting, rank-1 operands promoted).
//!
//! The core computes one `[M,K] @ [K,N]` product from strided operands. When
//! B's rows are contiguous, blocks of 4 rows × 16 columns accumulate in
//! vector registers over the whole K (the classic outer-product
//! micro-kernel, `VecTile`); leftover columns use an i-k-j loop whose inner
//! loop is contiguous. A transposed constant B is transposed at compile
//! time; a transposed run-time B (or a narrow one) uses dot products over K
//! that LLVM may reassociate, hence vectorize.

use super::conv::{const_f32_table, VecTile, VF};
use super::expect_inputs;
use super::reduce::fadd_reassoc;
use crate::cx::{CgResult, KernelCx, Operand};
use crate::mmm::gemm::ConstB;
use inkwell::values::{FloatValue, IntValue, PointerValue, VectorValue};
use qcc_ir::{broadcast_shapes, broadcast_strides, DType, Node, Op};

/// Rows of A per register tile.
const ROWS: usize = 4;
/// Vectors of [`VF`] columns per register tile.
const NV: usize = 2;
const COLS: usize = NV * VF;

/// A matrix view: element `(i, k)` at `off + i * rs + k * cs`.
#[derive(Clone, Copy)]
struct Mat<'ctx> {
    ptr: PointerValue<'ctx>,
    off: IntValue<'ctx>,
    rs: i64,
    cs: i64,
}

impl<'ctx> Mat<'ctx> {
    fn at(
        &self,
        cx: &KernelCx<'_, 'ctx>,
        i: IntValue<'ctx>,
        k: IntValue<'ctx>,
    ) -> CgResult<IntValue<'ctx>> {
        let r = cx.add(self.off, cx.mul_c(i, self.rs)?)?;
        cx.add(r, cx.mul_c(k, self.cs)?)
    }
    fn load(
        &self,
        cx: &KernelCx<'_, 'ctx>,
        i: IntValue<'ctx>,
        k: IntValue<'ctx>,
    ) -> CgResult<FloatValue<'ctx>> {
        cx.load_f32(self.ptr, self.at(cx, i, k)?)
    }
}

/// `out[off + i*n + j] = Σ_k A(i,k) B(k,j)` for an `m × n` output, `kk` deep.
#[allow(clippy::too_many_arguments)]
fn emit_mm<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    a: Mat<'ctx>,
    b: Mat<'ctx>,
    out: PointerValue<'ctx>,
    o_off: IntValue<'ctx>,
    (m, n, kk): (usize, usize, usize),
    tile: Option<&VecTile<'ctx>>,
) -> CgResult<()> {
    let (mi, ni, ki) = (m as i64, n as i64, kk as i64);
    let use_dot = b.cs != 1 || (n < VF && a.cs == 1);
    if use_dot {
        // Dot products over k (contiguous in B^T and, usually, in A).
        return cx.for_range(0, mi, |cx, i| {
            cx.for_range(0, ni, |cx, j| {
                let oi = cx.add(cx.add(o_off, cx.mul_c(i, ni)?)?, j)?;
                cx.store_f32(out, oi, cx.f32(0.0))?;
                cx.for_range(0, ki, |cx, k| {
                    let p = cx.fmul(a.load(cx, i, k)?, b.load(cx, k, j)?)?;
                    let acc = cx.load_f32(out, oi)?;
                    cx.store_f32(out, oi, fadd_reassoc(cx, acc, p)?)
                })
            })
        });
    }
    let col_tiles = match tile {
        Some(_) => ni / COLS as i64,
        None => 0,
    };
    if let Some(tile) = tile.filter(|_| col_tiles > 0) {
        // Column panels outside, so one K × 16 panel of B serves every row block.
        let full = (m / ROWS * ROWS) as i64;
        let block =
            |cx: &mut KernelCx<'_, 'ctx>, i0: IntValue<'ctx>, rows: usize, j0: IntValue<'ctx>| {
                tile.init(cx, &vec![cx.f32(0.0); rows])?;
                cx.for_range(0, ki, |cx, k| {
                    let brow = b.at(cx, k, j0)?;
                    let bv: Vec<VectorValue> = (0..NV)
                        .map(|v| VecTile::load(cx, b.ptr, cx.add_c(brow, (v * VF) as i64)?))
                        .collect::<CgResult<_>>()?;
                    let av: Vec<FloatValue> = (0..rows)
                        .map(|r| a.load(cx, cx.add_c(i0, r as i64)?, k))
                        .collect::<CgResult<_>>()?;
                    tile.fma(cx, &av, &bv)
                })?;
                let at: Vec<IntValue> = (0..rows)
                    .map(|r| {
                        let row = cx.mul_c(cx.add_c(i0, r as i64)?, ni)?;
                        cx.add(cx.add(o_off, row)?, j0)
                    })
                    .collect::<CgResult<_>>()?;
                tile.write(cx, out, &at)
            };
        cx.for_range(0, col_tiles, |cx, jt| {
            let j0 = cx.mul_c(jt, COLS as i64)?;
            cx.for_range_step(0, full, ROWS as i64, |cx, i0| block(cx, i0, ROWS, j0))?;
            if m % ROWS > 0 {
                block(cx, cx.i64(full), m % ROWS, j0)?;
            }
            Ok(())
        })?;
    }
    // Leftover columns: i-k-j, the inner loop contiguous in B and the output.
    let j_lo = col_tiles * COLS as i64;
    if j_lo >= ni {
        return Ok(());
    }
    cx.for_range(0, mi, |cx, i| {
        let orow = cx.add(o_off, cx.mul_c(i, ni)?)?;
        cx.for_range(j_lo, ni, |cx, j| {
            cx.store_f32(out, cx.add(orow, j)?, cx.f32(0.0))
        })?;
        cx.for_range(0, ki, |cx, k| {
            let av = a.load(cx, i, k)?;
            cx.for_range(j_lo, ni, |cx, j| {
                let oi = cx.add(orow, j)?;
                let acc = cx.load_f32(out, oi)?;
                cx.store_f32(out, oi, cx.fmuladd(av, b.load(cx, k, j)?, acc)?)
            })
        })
    })
}

fn only_f32(cx: &KernelCx<'_, '_>, ops: &[&Operand]) -> CgResult<()> {
    if ops.iter().any(|o| o.dtype() != DType::F32) {
        return Err(cx.unsupported("only f32 operands are supported"));
    }
    Ok(())
}

/// Emits the body of the node function for Gemm and MatMul.
pub fn emit<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    node: &Node,
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    expect_inputs(cx, ins, 2)?;
    match &node.op {
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => emit_gemm(cx, (*alpha, *beta, *trans_a, *trans_b), ins, out),
        Op::MatMul => emit_matmul(cx, &ins[0], &ins[1], out),
        _ => Err(cx.unsupported("not a matrix product")),
    }
}

/// A register tile when some output row is wide enough to use it.
fn tile_for<'ctx>(cx: &KernelCx<'_, 'ctx>, n: usize) -> CgResult<Option<VecTile<'ctx>>> {
    if n >= COLS {
        Ok(Some(VecTile::new(cx, ROWS, NV)?))
    } else {
        Ok(None)
    }
}

fn emit_gemm<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    (alpha, beta, trans_a, trans_b): (f32, f32, bool, bool),
    ins: &[Operand<'_, 'ctx>],
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    let (a, b, c) = (&ins[0], &ins[1], ins.get(2));
    only_f32(cx, &[a, b, out])?;
    if a.rank() != 2 || b.rank() != 2 || out.rank() != 2 {
        return Err(cx.unsupported("A, B and the output must be 2-D"));
    }
    let (m, k) = if trans_a {
        (a.shape()[1], a.shape()[0])
    } else {
        (a.shape()[0], a.shape()[1])
    };
    let (kb, n) = if trans_b {
        (b.shape()[1], b.shape()[0])
    } else {
        (b.shape()[0], b.shape()[1])
    };
    if k != kb || out.shape() != [m, n] {
        return Err(cx.unsupported(format!(
            "A {} and B {} do not give the output {}",
            a.ty, b.ty, out.ty
        )));
    }
    if let Some(g) = const_b_gemm(cx, (alpha, beta, trans_a, trans_b), b, c, (m, n, k))? {
        return g.emit(cx, a.ptr, k, out.ptr, f32::NEG_INFINITY, f32::INFINITY);
    }
    let zero = cx.i64(0);
    let am = if trans_a {
        Mat {
            ptr: a.ptr,
            off: zero,
            rs: 1,
            cs: m as i64,
        }
    } else {
        Mat {
            ptr: a.ptr,
            off: zero,
            rs: k as i64,
            cs: 1,
        }
    };
    let bm = match (trans_b, b.konst.and_then(|t| t.as_f32())) {
        (false, _) => Mat {
            ptr: b.ptr,
            off: zero,
            rs: n as i64,
            cs: 1,
        },
        (true, Some(v)) if v.len() == n * k => {
            // Transpose the constant now: B^T as a [K, N] table.
            let mut t = vec![0f32; n * k];
            for (j, row) in v.chunks_exact(k.max(1)).enumerate() {
                for (kk, &e) in row.iter().enumerate() {
                    t[kk * n + j] = e;
                }
            }
            let ptr = const_f32_table(cx, "gemm.bt", &t);
            Mat {
                ptr,
                off: zero,
                rs: n as i64,
                cs: 1,
            }
        }
        (true, _) => Mat {
            ptr: b.ptr,
            off: zero,
            rs: 1,
            cs: k as i64,
        },
    };
    let tile = tile_for(cx, n)?;
    emit_mm(cx, am, bm, out.ptr, zero, (m, n, k), tile.as_ref())?;

    // out = alpha * out + beta * C
    let c = c.filter(|_| beta != 0.0);
    if let Some(c) = c {
        only_f32(cx, &[c])?;
        if c.rank() > 2 || broadcast_shapes(c.shape(), &[m, n]).as_deref() != Some(&[m, n][..]) {
            return Err(cx.unsupported(format!("C {} does not broadcast to [{m},{n}]", c.ty)));
        }
    }
    if alpha == 1.0 && c.is_none() {
        return Ok(());
    }
    let cst: Vec<i64> = match c {
        Some(c) => broadcast_strides(c.shape(), &[m, n])
            .into_iter()
            .map(|s| s as i64)
            .collect(),
        None => vec![0, 0],
    };
    cx.for_nest(&[m, n], |cx, ivs| {
        let oi = cx.dot(ivs, &[n as i64, 1], 0)?;
        let mut v = cx.load_f32(out.ptr, oi)?;
        if alpha != 1.0 {
            v = cx.fmul(v, cx.f32(alpha))?;
        }
        if let Some(c) = c {
            let cv = cx.load_f32(c.ptr, cx.dot(ivs, &cst, 0)?)?;
            v = cx.fmuladd(cv, cx.f32(beta), v)?;
        }
        cx.store_f32(out.ptr, oi, v)
    })
}

fn emit_matmul<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    a: &Operand<'_, 'ctx>,
    b: &Operand<'_, 'ctx>,
    out: &Operand<'_, 'ctx>,
) -> CgResult<()> {
    only_f32(cx, &[a, b, out])?;
    if a.rank() == 0 || b.rank() == 0 {
        return Err(cx.unsupported("operands must have rank ≥ 1"));
    }
    // Rank-1 operands: [K] is [1,K] on the left, [K,1] on the right.
    let ash: Vec<usize> = if a.rank() == 1 {
        vec![1, a.shape()[0]]
    } else {
        a.shape().to_vec()
    };
    let bsh: Vec<usize> = if b.rank() == 1 {
        vec![b.shape()[0], 1]
    } else {
        b.shape().to_vec()
    };
    let (ab, bb) = (&ash[..ash.len() - 2], &bsh[..bsh.len() - 2]);
    let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
    let (kb, n) = (bsh[bsh.len() - 2], bsh[bsh.len() - 1]);
    let batch = broadcast_shapes(ab, bb)
        .ok_or_else(|| cx.unsupported(format!("batch dims of {} and {} differ", a.ty, b.ty)))?;
    let nb: usize = batch.iter().product();
    if k != kb || out.numel() != nb * m * n {
        return Err(cx.unsupported(format!(
            "A {} and B {} do not give the output {}",
            a.ty, b.ty, out.ty
        )));
    }
    // One shared B and a dense A: a single [batch·M, K] @ [K, N].
    let b_shared = bb.iter().product::<usize>() == 1;
    let (batch, m) = if b_shared && ab == batch.as_slice() {
        (vec![], nb * m)
    } else {
        (batch, m)
    };
    let scaled = |from: &[usize], f: usize| -> Vec<i64> {
        if batch.is_empty() {
            return vec![];
        }
        broadcast_strides(from, &batch)
            .into_iter()
            .map(|s| (s * f) as i64)
            .collect()
    };
    if batch.is_empty() {
        if let Some(v) = b
            .konst
            .and_then(|t| t.as_f32())
            .filter(|v| v.len() == k * n)
        {
            let g = ConstB::new(cx, cx.target.simd, (m, n, k), v, (n, 1), 1.0, None);
            return g.emit(cx, a.ptr, k, out.ptr, f32::NEG_INFINITY, f32::INFINITY);
        }
    }
    let (ast, bst, ost) = (scaled(ab, m * k), scaled(bb, k * n), scaled(&batch, m * n));
    let tile = tile_for(cx, n)?;
    cx.for_nest(&batch, |cx, ivs| {
        let am = Mat {
            ptr: a.ptr,
            off: cx.dot(ivs, &ast, 0)?,
            rs: k as i64,
            cs: 1,
        };
        let bm = Mat {
            ptr: b.ptr,
            off: cx.dot(ivs, &bst, 0)?,
            rs: n as i64,
            cs: 1,
        };
        let oo = cx.dot(ivs, &ost, 0)?;
        emit_mm(cx, am, bm, out.ptr, oo, (m, n, k), tile.as_ref())
    })
}

/// Gemm on the microkernels: a constant B, A not transposed, and C absent
/// or a constant that broadcasts along rows (`[N]`, `[1, N]` or a scalar),
/// so that `alpha` folds into the packed B and `beta · C` into the bias.
fn const_b_gemm<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    (alpha, beta, trans_a, trans_b): (f32, f32, bool, bool),
    b: &Operand<'_, 'ctx>,
    c: Option<&Operand<'_, 'ctx>>,
    (m, n, k): (usize, usize, usize),
) -> CgResult<Option<ConstB<'ctx>>> {
    let Some(bv) = b
        .konst
        .and_then(|t| t.as_f32())
        .filter(|v| v.len() == k * n)
    else {
        return Ok(None);
    };
    if trans_a || !alpha.is_finite() || c.is_some_and(|c| c.dtype() != DType::F32) {
        return Ok(None);
    }
    let bias: Option<Vec<f32>> = match c.filter(|_| beta != 0.0) {
        None => None,
        Some(c) => {
            let Some(cv) = c.konst.and_then(|t| t.as_f32()) else {
                return Ok(None);
            };
            let row_bcast = c.shape().iter().rev().skip(1).all(|&d| d == 1) && c.rank() <= 2;
            match cv.len() {
                1 if row_bcast => Some(vec![beta * cv[0]; n]),
                l if l == n && row_bcast => Some(cv.iter().map(|v| beta * v).collect()),
                _ => return Ok(None),
            }
        }
    };
    let rc = if trans_b { (1, k) } else { (n, 1) };
    Ok(Some(ConstB::new(
        cx,
        cx.target.simd,
        (m, n, k),
        bv,
        rc,
        alpha,
        bias.as_deref(),
    )))
}
