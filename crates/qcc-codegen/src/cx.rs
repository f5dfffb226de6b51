//! [`KernelCx`]: what a kernel sees while it emits the body of one node's
//! function, and [`Operand`]: one tensor argument of that function.
//!
//! Every helper returns `Result<_, CodegenError>` so kernels chain them with
//! `?`. Index arithmetic is done in `i64`; element pointers are computed with
//! in-bounds GEPs from an operand's base pointer and an element index.
//! Loops live in `loops.rs`, transcendental functions in `math.rs`; both are
//! further `impl KernelCx` blocks. See `KERNEL_API.md` for the contract.

use crate::portable::TargetFacts;
use crate::CodegenError;
use inkwell::builder::{Builder, BuilderError};
use inkwell::context::Context;
use inkwell::intrinsics::Intrinsic;
use inkwell::module::Module;
use inkwell::types::{BasicType, BasicTypeEnum, FloatType, IntType, PointerType};
use inkwell::values::{
    BasicMetadataValueEnum, BasicValue, BasicValueEnum, FloatValue, FunctionValue, IntValue,
    PointerValue, VectorValue,
};
use inkwell::{AddressSpace, FloatPredicate, IntPredicate};
use qcc_ir::{strides_of, DType, Tensor, TensorType};

impl From<BuilderError> for CodegenError {
    fn from(e: BuilderError) -> Self {
        CodegenError::Llvm(format!("builder: {e}"))
    }
}

/// Result type of every helper and kernel.
pub type CgResult<T> = Result<T, CodegenError>;

/// One tensor argument of a node function: its pointer and static type.
#[derive(Clone, Debug)]
pub struct Operand<'a, 'ctx> {
    /// Base pointer of the dense row-major data (a parameter of the node function).
    pub ptr: PointerValue<'ctx>,
    /// Element type and static shape.
    pub ty: TensorType,
    /// The value when it is a compile-time constant (a weight), for kernels
    /// that want to specialize on it (e.g. Pow by 2, constant Gather indices).
    pub konst: Option<&'a Tensor>,
    /// Known alignment of `ptr` in bytes (64 for workspace and weights, the
    /// element size for caller buffers).
    pub align: u32,
}

impl Operand<'_, '_> {
    pub fn dtype(&self) -> DType {
        self.ty.dtype
    }
    pub fn shape(&self) -> &[usize] {
        &self.ty.shape
    }
    pub fn rank(&self) -> usize {
        self.ty.shape.len()
    }
    pub fn numel(&self) -> usize {
        self.ty.numel()
    }
    /// Row-major strides in elements, as `i64` (ready for [`KernelCx::dot`]).
    pub fn strides(&self) -> Vec<i64> {
        strides_of(&self.ty.shape)
            .into_iter()
            .map(|s| s as i64)
            .collect()
    }
}

/// The emission context of one kernel: LLVM handles plus helpers.
///
/// The builder is positioned at the end of a block of the node function
/// (`void f(ptr in0, …, ptr out)`); the kernel appends code and must leave
/// the builder at the end of an unterminated block. The caller adds `ret`.
pub struct KernelCx<'a, 'ctx> {
    pub ctx: &'ctx Context,
    pub module: &'a Module<'ctx>,
    pub b: &'a Builder<'ctx>,
    /// The node function being filled.
    pub func: FunctionValue<'ctx>,
    /// Node name and op name, for error messages.
    pub node_name: String,
    pub op_name: &'static str,
    /// Facts about the target (pointer width, native division…).
    pub target: TargetFacts,
    /// The node's private workspace scratch, when the memory plan gave it
    /// some (`mmm::node_scratch` says how much; 64-byte aligned).
    pub scratch: Option<PointerValue<'ctx>>,
}

impl<'a, 'ctx> KernelCx<'a, 'ctx> {
    /// The error to return for an op configuration the kernel does not handle.
    pub fn unsupported(&self, msg: impl Into<String>) -> CodegenError {
        CodegenError::Unsupported {
            node: self.node_name.clone(),
            op: self.op_name,
            msg: msg.into(),
        }
    }

    // ----- types -----

    pub fn f32_t(&self) -> FloatType<'ctx> {
        self.ctx.f32_type()
    }
    pub fn i64_t(&self) -> IntType<'ctx> {
        self.ctx.i64_type()
    }
    pub fn i32_t(&self) -> IntType<'ctx> {
        self.ctx.i32_type()
    }
    pub fn i8_t(&self) -> IntType<'ctx> {
        self.ctx.i8_type()
    }
    pub fn i1_t(&self) -> IntType<'ctx> {
        self.ctx.bool_type()
    }
    pub fn ptr_t(&self) -> PointerType<'ctx> {
        self.ctx.ptr_type(AddressSpace::default())
    }
    /// The LLVM type of one stored element (`Bool`, `I8`, `U8` are `i8`).
    pub fn elem_type(&self, dt: DType) -> BasicTypeEnum<'ctx> {
        elem_type(self.ctx, dt)
    }

    // ----- constants -----

    pub fn f32(&self, v: f32) -> FloatValue<'ctx> {
        self.f32_t().const_float(v as f64)
    }
    pub fn i64(&self, v: i64) -> IntValue<'ctx> {
        self.i64_t().const_int(v as u64, true)
    }
    pub fn i32(&self, v: i32) -> IntValue<'ctx> {
        self.i32_t().const_int(v as i64 as u64, true)
    }
    /// An `i1` constant.
    pub fn bool(&self, v: bool) -> IntValue<'ctx> {
        self.i1_t().const_int(v as u64, false)
    }
    /// A constant of element type `dt` holding `v` (converted like a C cast; floats to
    /// integers truncate toward zero and saturate; Bool is `v != 0`).
    pub fn const_of(&self, dt: DType, v: f64) -> BasicValueEnum<'ctx> {
        match dt {
            DType::F32 => self.f32(v as f32).into(),
            DType::I64 => self.i64(v as i64).into(),
            DType::I32 => self.i32(v as i32).into(),
            DType::I8 => self.i8_t().const_int(v as i8 as u8 as u64, false).into(),
            DType::U8 => self.i8_t().const_int(v as u8 as u64, false).into(),
            DType::Bool => self.i8_t().const_int((v != 0.0) as u64, false).into(),
        }
    }

    // ----- integer (index) arithmetic; i64, no signed wrap -----

    pub fn add(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> CgResult<IntValue<'ctx>> {
        Ok(self.b.build_int_nsw_add(a, b, "")?)
    }
    pub fn sub(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> CgResult<IntValue<'ctx>> {
        Ok(self.b.build_int_nsw_sub(a, b, "")?)
    }
    pub fn mul(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> CgResult<IntValue<'ctx>> {
        Ok(self.b.build_int_nsw_mul(a, b, "")?)
    }
    /// `a + k` (no instruction when `k == 0`).
    pub fn add_c(&self, a: IntValue<'ctx>, k: i64) -> CgResult<IntValue<'ctx>> {
        if k == 0 {
            return Ok(a);
        }
        let c = a.get_type().const_int(k as u64, true);
        self.add(a, c)
    }
    /// `a * k` (no instruction when `k == 1`).
    pub fn mul_c(&self, a: IntValue<'ctx>, k: i64) -> CgResult<IntValue<'ctx>> {
        if k == 1 {
            return Ok(a);
        }
        let c = a.get_type().const_int(k as u64, true);
        self.mul(a, c)
    }
    pub fn icmp(
        &self,
        p: IntPredicate,
        a: IntValue<'ctx>,
        b: IntValue<'ctx>,
    ) -> CgResult<IntValue<'ctx>> {
        Ok(self.b.build_int_compare(p, a, b, "")?)
    }
    /// Signed minimum.
    pub fn smin(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> CgResult<IntValue<'ctx>> {
        let c = self.icmp(IntPredicate::SLT, a, b)?;
        self.select_i(c, a, b)
    }
    /// Signed maximum.
    pub fn smax(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> CgResult<IntValue<'ctx>> {
        let c = self.icmp(IntPredicate::SGT, a, b)?;
        self.select_i(c, a, b)
    }
    /// Sign-extends (or truncates) an integer to i64.
    pub fn to_i64(&self, v: IntValue<'ctx>) -> CgResult<IntValue<'ctx>> {
        Ok(self.b.build_int_cast_sign_flag(v, self.i64_t(), true, "")?)
    }

    // ----- float arithmetic -----

    pub fn fadd(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        Ok(self.b.build_float_add(a, b, "")?)
    }
    pub fn fsub(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        Ok(self.b.build_float_sub(a, b, "")?)
    }
    pub fn fmul(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        Ok(self.b.build_float_mul(a, b, "")?)
    }
    pub fn fdiv(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        Ok(self.b.build_float_div(a, b, "")?)
    }
    pub fn fneg(&self, a: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        Ok(self.b.build_float_neg(a, "")?)
    }
    /// `a * b + c`, fused where the target has FMA (`llvm.fmuladd`; never a libcall).
    pub fn fmuladd(
        &self,
        a: FloatValue<'ctx>,
        b: FloatValue<'ctx>,
        c: FloatValue<'ctx>,
    ) -> CgResult<FloatValue<'ctx>> {
        let t = a.get_type().as_basic_type_enum();
        let r = self.call_intrinsic("llvm.fmuladd", &[t], &[a.into(), b.into(), c.into()])?;
        Ok(r.into_float_value())
    }
    pub fn fcmp(
        &self,
        p: FloatPredicate,
        a: FloatValue<'ctx>,
        b: FloatValue<'ctx>,
    ) -> CgResult<IntValue<'ctx>> {
        Ok(self.b.build_float_compare(p, a, b, "")?)
    }
    /// Maximum; NaN when either operand is NaN (ONNX `Max`, as ONNX Runtime
    /// and numpy compute it, and like the interpreter's `binary_f32`). Built
    /// from compare+select: `llvm.maximum` becomes a libm call on targets
    /// without a native instruction.
    pub fn fmax(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        let gt = self.fcmp(FloatPredicate::OGT, a, b)?;
        self.nan_or(a, b, self.select_f(gt, a, b)?)
    }
    /// Minimum; NaN when either operand is NaN (ONNX `Min`).
    pub fn fmin(&self, a: FloatValue<'ctx>, b: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        let lt = self.fcmp(FloatPredicate::OLT, a, b)?;
        self.nan_or(a, b, self.select_f(lt, a, b)?)
    }
    /// `a + b` (a NaN) when `a` or `b` is NaN, else `r`.
    fn nan_or(
        &self,
        a: FloatValue<'ctx>,
        b: FloatValue<'ctx>,
        r: FloatValue<'ctx>,
    ) -> CgResult<FloatValue<'ctx>> {
        let nan = self.fcmp(FloatPredicate::UNO, a, b)?;
        self.select_f(nan, self.fadd(a, b)?, r)
    }
    /// `min(max(x, lo), hi)`, NaN passes through.
    pub fn fclamp(&self, x: FloatValue<'ctx>, lo: f32, hi: f32) -> CgResult<FloatValue<'ctx>> {
        let mut r = x;
        if lo != f32::NEG_INFINITY {
            let c = self.fcmp(FloatPredicate::OLT, r, self.f32(lo))?;
            r = self.select_f(c, self.f32(lo), r)?;
        }
        if hi != f32::INFINITY {
            let c = self.fcmp(FloatPredicate::OGT, r, self.f32(hi))?;
            r = self.select_f(c, self.f32(hi), r)?;
        }
        Ok(r)
    }
    pub fn fabs(&self, x: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        let t = x.get_type().as_basic_type_enum();
        Ok(self
            .call_intrinsic("llvm.fabs", &[t], &[x.into()])?
            .into_float_value())
    }
    /// IEEE square root (`llvm.sqrt`, a native instruction on every supported target).
    pub fn sqrt(&self, x: FloatValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        let t = x.get_type().as_basic_type_enum();
        Ok(self
            .call_intrinsic("llvm.sqrt", &[t], &[x.into()])?
            .into_float_value())
    }
    /// Magnitude of `mag` with the sign of `sign`.
    pub fn copysign(
        &self,
        mag: FloatValue<'ctx>,
        sign: FloatValue<'ctx>,
    ) -> CgResult<FloatValue<'ctx>> {
        let t = mag.get_type().as_basic_type_enum();
        Ok(self
            .call_intrinsic("llvm.copysign", &[t], &[mag.into(), sign.into()])?
            .into_float_value())
    }

    // ----- select, bit casts -----

    pub fn select_f(
        &self,
        c: IntValue<'ctx>,
        a: FloatValue<'ctx>,
        b: FloatValue<'ctx>,
    ) -> CgResult<FloatValue<'ctx>> {
        Ok(self.b.build_select(c, a, b, "")?.into_float_value())
    }
    pub fn select_i(
        &self,
        c: IntValue<'ctx>,
        a: IntValue<'ctx>,
        b: IntValue<'ctx>,
    ) -> CgResult<IntValue<'ctx>> {
        Ok(self.b.build_select(c, a, b, "")?.into_int_value())
    }
    pub fn select(
        &self,
        c: IntValue<'ctx>,
        a: BasicValueEnum<'ctx>,
        b: BasicValueEnum<'ctx>,
    ) -> CgResult<BasicValueEnum<'ctx>> {
        Ok(self.b.build_select(c, a, b, "")?)
    }
    /// Reinterprets an f32 as its i32 bit pattern.
    pub fn f32_bits(&self, x: FloatValue<'ctx>) -> CgResult<IntValue<'ctx>> {
        Ok(self.b.build_bit_cast(x, self.i32_t(), "")?.into_int_value())
    }
    /// Reinterprets an i32 bit pattern as an f32.
    pub fn f32_from_bits(&self, x: IntValue<'ctx>) -> CgResult<FloatValue<'ctx>> {
        Ok(self
            .b
            .build_bit_cast(x, self.f32_t(), "")?
            .into_float_value())
    }

    // ----- memory -----

    /// Pointer to element `idx` (an i64 element index) of an array of `dt`.
    pub fn gep(
        &self,
        dt: DType,
        ptr: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
    ) -> CgResult<PointerValue<'ctx>> {
        // SAFETY: a single-index GEP over a scalar element type; kernels index
        // within the operand's static bounds (in-bounds by construction).
        Ok(unsafe {
            self.b
                .build_in_bounds_gep(self.elem_type(dt), ptr, &[idx], "")?
        })
    }
    pub fn gep_f32(
        &self,
        ptr: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
    ) -> CgResult<PointerValue<'ctx>> {
        self.gep(DType::F32, ptr, idx)
    }
    /// Pointer `ptr + bytes`.
    pub fn gep_bytes(&self, ptr: PointerValue<'ctx>, bytes: i64) -> CgResult<PointerValue<'ctx>> {
        if bytes == 0 {
            return Ok(ptr);
        }
        self.gep(DType::U8, ptr, self.i64(bytes))
    }
    /// Loads element `idx` of an array of `dt` (Bool/I8/U8 load as `i8`).
    pub fn load(
        &self,
        dt: DType,
        ptr: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
    ) -> CgResult<BasicValueEnum<'ctx>> {
        let p = self.gep(dt, ptr, idx)?;
        Ok(self.b.build_load(self.elem_type(dt), p, "")?)
    }
    /// Stores `v` (of `dt`'s LLVM type) into element `idx`.
    pub fn store(
        &self,
        dt: DType,
        ptr: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
        v: BasicValueEnum<'ctx>,
    ) -> CgResult<()> {
        let p = self.gep(dt, ptr, idx)?;
        self.b.build_store(p, v)?;
        Ok(())
    }
    pub fn load_f32(
        &self,
        ptr: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
    ) -> CgResult<FloatValue<'ctx>> {
        Ok(self.load(DType::F32, ptr, idx)?.into_float_value())
    }
    pub fn store_f32(
        &self,
        ptr: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
        v: FloatValue<'ctx>,
    ) -> CgResult<()> {
        self.store(DType::F32, ptr, idx, v.into())
    }
    /// Loads an integer element of `dt` (I64/I32/I8/U8/Bool) widened to i64
    /// (sign-extended, zero-extended for U8 and Bool).
    pub fn load_index(
        &self,
        dt: DType,
        ptr: PointerValue<'ctx>,
        idx: IntValue<'ctx>,
    ) -> CgResult<IntValue<'ctx>> {
        if dt == DType::F32 {
            return Err(self.unsupported("expected an integer tensor, got f32"));
        }
        let v = self.load(dt, ptr, idx)?.into_int_value();
        let signed = !matches!(dt, DType::U8 | DType::Bool);
        Ok(self
            .b
            .build_int_cast_sign_flag(v, self.i64_t(), signed, "")?)
    }
    /// `memcpy(dst, src, bytes)` with a static size (nothing emitted for 0).
    pub fn memcpy(
        &self,
        dst: PointerValue<'ctx>,
        dst_align: u32,
        src: PointerValue<'ctx>,
        src_align: u32,
        bytes: u64,
    ) -> CgResult<()> {
        if bytes == 0 {
            return Ok(());
        }
        self.b
            .build_memcpy(dst, dst_align, src, src_align, self.i64(bytes as i64))?;
        Ok(())
    }
    /// `memset(dst, byte, bytes)` with a static size (nothing emitted for 0).
    pub fn memset(
        &self,
        dst: PointerValue<'ctx>,
        align: u32,
        byte: u8,
        bytes: u64,
    ) -> CgResult<()> {
        if bytes == 0 {
            return Ok(());
        }
        let v = self.i8_t().const_int(byte as u64, false);
        self.b.build_memset(dst, align, v, self.i64(bytes as i64))?;
        Ok(())
    }
    /// A stack array of `n` elements of `dt`, allocated in the function's entry
    /// block (so it is allocated once, not per loop iteration). Keep it small:
    /// embedded targets have little stack.
    pub fn stack_array(&self, dt: DType, n: u64) -> CgResult<PointerValue<'ctx>> {
        if n.saturating_mul(dt.size() as u64) > 1 << 20 {
            return Err(self.unsupported(format!("stack array of {n} {dt} elements is too large")));
        }
        let cur = self
            .b
            .get_insert_block()
            .ok_or_else(|| CodegenError::Llvm("builder is not positioned".into()))?;
        let entry = self
            .func
            .get_first_basic_block()
            .ok_or_else(|| CodegenError::Llvm("node function has no entry block".into()))?;
        match entry.get_first_instruction() {
            Some(i) => self.b.position_before(&i),
            None => self.b.position_at_end(entry),
        }
        let ty = self.elem_type(dt).array_type(n as u32);
        let p = self.b.build_alloca(ty, "scratch");
        self.b.position_at_end(cur);
        let p = p?;
        if let Some(i) = p.as_instruction_value() {
            i.set_alignment(64)
                .map_err(|e| CodegenError::Llvm(e.to_string()))?;
        }
        Ok(p)
    }

    // ----- vectors -----

    /// `n` lanes of the scalar `x` (integer or float).
    pub fn splat(&self, x: BasicValueEnum<'ctx>, n: u32) -> CgResult<VectorValue<'ctx>> {
        let vt = match x {
            BasicValueEnum::IntValue(i) => i.get_type().vec_type(n),
            BasicValueEnum::FloatValue(f) => f.get_type().vec_type(n),
            _ => return Err(CodegenError::Llvm("splat of a non-scalar".into())),
        };
        let v = self
            .b
            .build_insert_element(vt.get_undef(), x, self.i64(0), "")?;
        let zeros = self.i32_t().vec_type(n).const_zero();
        Ok(self
            .b
            .build_shuffle_vector(v, vt.get_undef(), zeros, "splat")?)
    }

    /// `shufflevector a, b, idx` (lane `i` of the result is lane `idx[i]`
    /// of `a ++ b`).
    pub fn shuffle(
        &self,
        a: VectorValue<'ctx>,
        b: VectorValue<'ctx>,
        idx: &[u32],
    ) -> CgResult<VectorValue<'ctx>> {
        let i32t = self.i32_t();
        let m: Vec<IntValue> = idx
            .iter()
            .map(|&i| i32t.const_int(i as u64, false))
            .collect();
        Ok(self
            .b
            .build_shuffle_vector(a, b, inkwell::types::VectorType::const_vector(&m), "")?)
    }

    // ----- calls -----

    /// Calls an LLVM intrinsic by name; `overloads` are its overloaded types
    /// (e.g. `[f32]` for `llvm.fabs`). Only intrinsics that lower to inline code
    /// on every target are allowed here: never `llvm.exp`, `llvm.log`,
    /// `llvm.pow`, `llvm.floor`, `llvm.round`, `llvm.fma` (libm calls).
    pub fn call_intrinsic(
        &self,
        name: &str,
        overloads: &[BasicTypeEnum<'ctx>],
        args: &[BasicMetadataValueEnum<'ctx>],
    ) -> CgResult<BasicValueEnum<'ctx>> {
        let f = Intrinsic::find(name)
            .and_then(|i| i.get_declaration(self.module, overloads))
            .ok_or_else(|| CodegenError::Llvm(format!("unknown intrinsic {name}")))?;
        self.b
            .build_call(f, args, "")?
            .try_as_basic_value()
            .basic()
            .ok_or_else(|| CodegenError::Llvm(format!("intrinsic {name} returns void")))
    }
}

/// The LLVM type of one stored element of `dt`.
pub(crate) fn elem_type(ctx: &Context, dt: DType) -> BasicTypeEnum<'_> {
    match dt {
        DType::F32 => ctx.f32_type().into(),
        DType::I64 => ctx.i64_type().into(),
        DType::I32 => ctx.i32_type().into(),
        DType::I8 | DType::U8 | DType::Bool => ctx.i8_type().into(),
    }
}
