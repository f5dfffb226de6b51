//! ISA dot-product instructions for the 8-bit dot core (`qgemm::dot_rows`):
//! AArch64 `sdot` (with the dotprod extension) and x86 AVX512-VNNI
//! `vpdpbusd` (non-saturating), each on whole chunks of the K axis.
//!
//! `sdot` multiplies signed × signed bytes and `vpdpbusd` unsigned × signed,
//! so an activation of the other signedness is flipped with `x ^ 0x80`,
//! which adds [`dot_shift`] (±128) to every element; the callers fold
//! `shift * Σw` into the bias at compile time, as they do for zero points.
//! Accumulation wraps in i32 like the generic loop, so results are
//! bit-identical (the callers check that the true sum fits in i32).

use super::qgemm::Row;
use crate::cx::{CgResult, KernelCx};
use crate::CodegenError;
use inkwell::types::BasicTypeEnum;
use inkwell::values::{BasicMetadataValueEnum, BasicValue, BasicValueEnum, IntValue, PointerValue};
use qcc_ir::DType;

/// The dot-product instruction a target offers, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    /// AArch64 `sdot`: 16 bytes, 4 i32 lanes.
    Sdot,
    /// AVX512-VNNI `vpdpbusd` on zmm: 64 bytes, 16 i32 lanes.
    Vnni512,
}

impl Isa {
    fn of(cx: &KernelCx<'_, '_>) -> Option<Isa> {
        if cx.target.dotprod {
            Some(Isa::Sdot)
        } else if cx.target.avx512vnni {
            Some(Isa::Vnni512)
        } else {
            None
        }
    }
    /// Bytes per instruction.
    fn chunk(self) -> i64 {
        match self {
            Isa::Sdot => 16,
            Isa::Vnni512 => 64,
        }
    }
    /// The activation dtype the instruction reads natively.
    fn native_x(self) -> DType {
        match self {
            Isa::Sdot => DType::I8,
            Isa::Vnni512 => DType::U8,
        }
    }
}

/// The ISA to use for a `len`-long dot of `xdt` activations with i8 weights.
fn pick(cx: &KernelCx<'_, '_>, xdt: DType, len: i64) -> Option<Isa> {
    let isa = Isa::of(cx)?;
    (matches!(xdt, DType::I8 | DType::U8) && len >= isa.chunk()).then_some(isa)
}

/// What `dot_rows` adds to every activation (`x ^ 0x80` flips i8 ↔ u8):
/// +128 for i8 on VNNI, -128 for u8 on `sdot`, else 0. Callers fold
/// `-shift * Σw` into the bias, i.e. fold with zero point `zx + shift`.
/// Whether rows of `len` elements against `xdt` inputs take a dot-product
/// instruction for their whole chunks ([`isa_chunks`]).
pub(crate) fn has_isa(cx: &KernelCx<'_, '_>, xdt: DType, len: i64) -> bool {
    pick(cx, xdt, len).is_some()
}

pub(crate) fn dot_shift(cx: &KernelCx<'_, '_>, xdt: DType, len: i64) -> i32 {
    match pick(cx, xdt, len) {
        Some(isa) if isa.native_x() != xdt => {
            if xdt == DType::I8 {
                128
            } else {
                -128
            }
        }
        _ => 0,
    }
}

/// Accumulates `Σ (x[k] + shift) * w[j][k]` over the ISA's whole chunks
/// (`k < end`) into `acc[j]` (i32 values, wrapping) and returns the new
/// sums and `end`; with no ISA (or too short a row) returns them unchanged
/// and 0.
pub(crate) fn isa_chunks<'ctx>(
    cx: &mut KernelCx<'_, 'ctx>,
    x: Row<'ctx>,
    ws: &[Row<'ctx>],
    len: i64,
    acc: &[IntValue<'ctx>],
) -> CgResult<(Vec<IntValue<'ctx>>, i64)> {
    let Some(isa) = pick(cx, x.dt, len) else {
        return Ok((acc.to_vec(), 0));
    };
    if ws.iter().any(|w| w.dt != DType::I8) {
        return Err(cx.unsupported("dot product weights must be int8"));
    }
    let chunk = isa.chunk();
    let lanes = (chunk / 4) as u32;
    let end = len / chunk * chunk;
    let acc_t = cx.i32_t().vec_type(lanes);
    let byte_t = cx.i8_t().vec_type(chunk as u32);
    let slots = cx.stack_array(DType::I32, lanes as u64 * ws.len() as u64)?;
    let slot = |cx: &KernelCx<'_, 'ctx>, j: usize| {
        cx.gep(DType::I32, slots, cx.i64(j as i64 * lanes as i64))
    };
    for j in 0..ws.len() {
        cx.b.build_store(slot(cx, j)?, acc_t.const_zero())?;
    }
    let flip = isa.native_x() != x.dt;
    let load_bytes = |cx: &KernelCx<'_, 'ctx>, p: PointerValue<'ctx>, off: IntValue<'ctx>| {
        let q = cx.gep(DType::I8, p, off)?;
        let v = cx.b.build_load(byte_t, q, "")?.into_vector_value();
        if let Some(i) = v.as_instruction_value() {
            i.set_alignment(1)
                .map_err(|e| CodegenError::Llvm(e.to_string()))?;
        }
        CgResult::Ok(v)
    };
    cx.for_range_step(0, end, chunk, |cx, k| {
        let mut xv = load_bytes(cx, x.ptr, cx.add(x.off, k)?)?;
        if flip {
            let m = cx.i8_t().const_int(0x80, false);
            let splat = inkwell::types::VectorType::const_vector(&vec![m; chunk as usize]);
            xv = cx.b.build_xor(xv, splat, "")?;
        }
        for (j, w) in ws.iter().enumerate() {
            let wv = load_bytes(cx, w.ptr, cx.add(w.off, k)?)?;
            let p = slot(cx, j)?;
            let a = cx.b.build_load(acc_t, p, "")?;
            let r = call_dot(
                cx,
                isa,
                acc_t.into(),
                byte_t.into(),
                a,
                xv.into(),
                wv.into(),
            )?;
            cx.b.build_store(p, r)?;
        }
        Ok(())
    })?;
    let mut out = Vec::with_capacity(ws.len());
    for (j, &a0) in acc.iter().enumerate().take(ws.len()) {
        let v = cx.b.build_load(acc_t, slot(cx, j)?, "")?;
        let s = cx
            .call_intrinsic("llvm.vector.reduce.add", &[acc_t.into()], &[v.into()])?
            .into_int_value();
        out.push(cx.b.build_int_add(a0, s, "")?);
    }
    Ok((out, end))
}

/// One `sdot` / `vpdpbusd`, its operands cast to the declaration's types
/// (LLVM versions differ on `<64 x i8>` vs `<16 x i32>` for VNNI).
fn call_dot<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    isa: Isa,
    acc_t: BasicTypeEnum<'ctx>,
    byte_t: BasicTypeEnum<'ctx>,
    acc: BasicValueEnum<'ctx>,
    x: BasicValueEnum<'ctx>,
    w: BasicValueEnum<'ctx>,
) -> CgResult<BasicValueEnum<'ctx>> {
    let (name, overloads): (&str, Vec<BasicTypeEnum>) = match isa {
        Isa::Sdot => ("llvm.aarch64.neon.sdot", vec![acc_t, byte_t]),
        Isa::Vnni512 => ("llvm.x86.avx512.vpdpbusd.512", vec![]),
    };
    call_cast(cx, name, &overloads, acc_t, &[acc, x, w])
}

/// Calls intrinsic `name` (with `overloads`), bit-casting each argument to
/// the declared parameter type and the result to `ret_t`: the vector
/// intrinsics of different LLVM versions disagree on element types.
pub(crate) fn call_cast<'ctx>(
    cx: &KernelCx<'_, 'ctx>,
    name: &str,
    overloads: &[BasicTypeEnum<'ctx>],
    ret_t: BasicTypeEnum<'ctx>,
    args: &[BasicValueEnum<'ctx>],
) -> CgResult<BasicValueEnum<'ctx>> {
    let f = inkwell::intrinsics::Intrinsic::find(name)
        .and_then(|i| i.get_declaration(cx.module, overloads))
        .ok_or_else(|| CodegenError::Llvm(format!("unknown intrinsic {name}")))?;
    let params = f.get_type().get_param_types();
    if params.len() != args.len() {
        return Err(CodegenError::Llvm(format!(
            "unexpected signature of {name}"
        )));
    }
    let args: Vec<BasicMetadataValueEnum> = args
        .iter()
        .zip(&params)
        .map(|(v, t)| {
            let t: BasicTypeEnum = (*t)
                .try_into()
                .map_err(|_| CodegenError::Llvm(format!("unexpected signature of {name}")))?;
            Ok(cx.b.build_bit_cast(*v, t, "")?.into())
        })
        .collect::<CgResult<_>>()?;
    let r =
        cx.b.build_call(f, &args, "")?
            .try_as_basic_value()
            .basic()
            .ok_or_else(|| CodegenError::Llvm(format!("intrinsic {name} returns void")))?;
    Ok(cx.b.build_bit_cast(r, ret_t, "")?)
}
