//! ONNX Runtime's `com.microsoft` `MatMulNBits`: a MatMul whose constant B is
//! quantized to 2, 4 or 8 bits in blocks along K (weight-only quantization,
//! as `MatMulNBitsQuantizer` writes it). B is dequantized here, at compile
//! time, into the floats the op defines (`(q - zero_point) · scale` per
//! block, one f32 multiplication), and the node becomes a float MatMul (plus
//! the bias). The weights are stored as f32 in the object.

use super::R;
use crate::node::NodeCx;
use qcc_ir::{BinaryOp, DType, Op, Tensor};

pub(super) fn matmul_nbits(cx: &mut NodeCx) -> R {
    let a = cx.input(0)?;
    let at = cx.ty(a);
    if at.dtype != DType::F32 || at.rank() == 0 {
        return Err(cx.err(format!("A must be a float tensor, got {at}")));
    }
    let req = |cx: &NodeCx, name: &str| -> Result<usize, crate::error::Problem> {
        let v = cx
            .attr(cx.attrs.int(name))?
            .ok_or_else(|| cx.err(format!("attribute '{name}' is required")))?;
        usize::try_from(v)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| cx.err(format!("attribute '{name}' must be positive, got {v}")))
    };
    let (k, n, block) = (req(cx, "K")?, req(cx, "N")?, req(cx, "block_size")?);
    let bits = cx.attr(cx.attrs.int_or("bits", 4))?;
    if !matches!(bits, 2 | 4 | 8) {
        return Err(cx.err(format!("bits={bits} is not supported (2, 4 and 8 are)")));
    }
    let bits = bits as usize;
    if at.shape[at.rank() - 1] != k {
        return Err(cx.err(format!("A {at} does not end in K = {k}")));
    }
    if cx.has_input(4) {
        return Err(cx.err("g_idx (act-order) is not supported"));
    }
    let blocks = k.div_ceil(block);
    // Checked: the attributes are the model's and may be absurd.
    let blob = block
        .checked_mul(bits)
        .map(|b| b.div_ceil(8))
        .ok_or_else(|| cx.err(format!("block_size {block} is too large")))?;
    let b_len = n
        .checked_mul(blocks)
        .and_then(|v| v.checked_mul(blob))
        .ok_or_else(|| cx.err(format!("N = {n} blocks of {blob} bytes are too many")))?;
    let b = cx
        .const_input(1, "B")?
        .ok_or_else(|| cx.err("input B is missing"))?;
    let q = match b.data() {
        qcc_ir::TensorData::U8(q) if q.len() == b_len => q.clone(),
        _ => {
            return Err(cx.err(format!(
                "B {} must be uint8 [{n}, {blocks}, {blob}] (N, blocks of {block} along K = {k}, bytes per block)",
                b.ty()
            )))
        }
    };
    let scales = cx
        .const_input(2, "scales")?
        .ok_or_else(|| cx.err("input scales is missing"))?;
    let scales = match scales.as_f32() {
        Some(s) if s.len() == n * blocks => s.to_vec(),
        _ => {
            return Err(cx.err(format!(
                "scales {} must be {} floats (N × blocks)",
                scales.ty(),
                n * blocks
            )))
        }
    };
    // One zero point per (column, block): packed like B when uint8, plain
    // when float; absent: the middle of the range.
    let zp_stride = (blocks * bits).div_ceil(8);
    let mid = (1u32 << (bits - 1)) as f32;
    let zero: Vec<f32> = match cx.const_input(3, "zero_points")? {
        None => vec![mid; n * blocks],
        Some(z) => match z.data() {
            qcc_ir::TensorData::U8(zb) if zb.len() == n * zp_stride => (0..n * blocks)
                .map(|i| {
                    let (col, blk) = (i / blocks, i % blocks);
                    unpack(&zb[col * zp_stride..], blk, bits) as f32
                })
                .collect(),
            qcc_ir::TensorData::F32(zf) if zf.len() == n * blocks => zf.clone(),
            _ => {
                return Err(cx.err(format!(
                    "zero_points {} must be uint8 [{}] (packed) or float [{}]",
                    z.ty(),
                    n * zp_stride,
                    n * blocks
                )))
            }
        },
    };
    let mut w = vec![0f32; k * n];
    for col in 0..n {
        for blk in 0..blocks {
            let bytes = &q[(col * blocks + blk) * blob..(col * blocks + blk + 1) * blob];
            let (s, z) = (scales[col * blocks + blk], zero[col * blocks + blk]);
            for j in 0..block.min(k - blk * block) {
                let v = unpack(bytes, j, bits) as f32;
                w[(blk * block + j) * n + col] = (v - z) * s;
            }
        }
    }
    let w = Tensor::from_f32(vec![k, n], w).ok_or_else(|| cx.err("bad weight"))?;
    let w = cx.add_const("weight", w);
    match cx.opt_input(5)? {
        None => Ok(vec![cx.add(Op::MatMul, vec![a, w])?]),
        Some(bias) => {
            let y = cx.add_aux("matmul", Op::MatMul, vec![a, w])?;
            Ok(vec![cx.add(Op::Binary(BinaryOp::Add), vec![y, bias])?])
        }
    }
}

/// Element `i` of values packed `bits` to a byte, the first in the low bits.
fn unpack(bytes: &[u8], i: usize, bits: usize) -> u32 {
    let per = 8 / bits;
    ((bytes[i / per] >> (bits * (i % per))) & ((1u16 << bits) - 1) as u8) as u32
}
