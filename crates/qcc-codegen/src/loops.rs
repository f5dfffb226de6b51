//! Counted loops for kernels: static bounds (`for_range`, `for_nest`),
//! dynamic bounds (`for_range_dyn`), linear index helpers (`dot`) and
//! dimension coalescing ([`coalesce`]) to shrink loop nests.
//!
//! Loops are emitted in rotated form (`body; i += step; if i < end goto body`)
//! with an `i64` induction variable, which LLVM's vectorizer and unroller
//! handle directly. A loop of one iteration emits no loop at all (the body
//! gets the constant start); a loop of zero iterations emits nothing.

use crate::cx::{CgResult, KernelCx};
use inkwell::values::IntValue;
use inkwell::IntPredicate;

/// Body of a loop nest: receives one induction variable per dim, outermost first.
pub type NestBody<'b, 'a, 'ctx> =
    dyn FnMut(&mut KernelCx<'a, 'ctx>, &[IntValue<'ctx>]) -> CgResult<()> + 'b;

impl<'a, 'ctx> KernelCx<'a, 'ctx> {
    /// `for (i = lo; i < hi; i++) body(i)` with static bounds.
    pub fn for_range<F>(&mut self, lo: i64, hi: i64, body: F) -> CgResult<()>
    where
        F: FnOnce(&mut Self, IntValue<'ctx>) -> CgResult<()>,
    {
        self.for_range_step(lo, hi, 1, body)
    }

    /// `for (i = lo; i < hi; i += step) body(i)` with static bounds, `step > 0`.
    pub fn for_range_step<F>(&mut self, lo: i64, hi: i64, step: i64, body: F) -> CgResult<()>
    where
        F: FnOnce(&mut Self, IntValue<'ctx>) -> CgResult<()>,
    {
        if step <= 0 {
            return Err(crate::CodegenError::Llvm(format!(
                "for_range_step: step {step} must be positive"
            )));
        }
        if lo >= hi {
            return Ok(());
        }
        if hi - lo <= step {
            let i = self.i64(lo);
            return body(self, i);
        }
        let last = lo + (hi - lo - 1) / step * step; // the last value taken
        let pre = self.current_block()?;
        let head = self.ctx.append_basic_block(self.func, "loop");
        self.b.build_unconditional_branch(head)?;
        self.b.position_at_end(head);
        let i = self.b.build_phi(self.i64_t(), "i")?;
        let iv = i.as_basic_value().into_int_value();
        body(self, iv)?;
        let latch = self.current_block()?;
        let next = self.b.build_int_nsw_add(iv, self.i64(step), "i.next")?;
        let cont = self.icmp(IntPredicate::SLE, next, self.i64(last))?;
        let exit = self.ctx.append_basic_block(self.func, "loop.end");
        self.b.build_conditional_branch(cont, head, exit)?;
        i.add_incoming(&[(&self.i64(lo), pre), (&next, latch)]);
        self.b.position_at_end(exit);
        Ok(())
    }

    /// `for (i = lo; i < hi; i++) body(i)` with run-time `i64` bounds (no
    /// iteration when `lo >= hi`). Prefer static bounds where possible.
    pub fn for_range_dyn<F>(
        &mut self,
        lo: IntValue<'ctx>,
        hi: IntValue<'ctx>,
        body: F,
    ) -> CgResult<()>
    where
        F: FnOnce(&mut Self, IntValue<'ctx>) -> CgResult<()>,
    {
        let pre = self.current_block()?;
        let head = self.ctx.append_basic_block(self.func, "dloop");
        let exit = self.ctx.append_basic_block(self.func, "dloop.end");
        let any = self.icmp(IntPredicate::SLT, lo, hi)?;
        self.b.build_conditional_branch(any, head, exit)?;
        self.b.position_at_end(head);
        let i = self.b.build_phi(self.i64_t(), "i")?;
        let iv = i.as_basic_value().into_int_value();
        body(self, iv)?;
        let latch = self.current_block()?;
        let next = self.b.build_int_nsw_add(iv, self.i64(1), "i.next")?;
        let cont = self.icmp(IntPredicate::SLT, next, hi)?;
        self.b.build_conditional_branch(cont, head, exit)?;
        i.add_incoming(&[(&lo, pre), (&next, latch)]);
        exit.move_after(latch)
            .map_err(|()| crate::CodegenError::Llvm("cannot order loop blocks".into()))?;
        self.b.position_at_end(exit);
        Ok(())
    }

    /// A loop nest over `shape` (outermost first); `body` gets one induction
    /// variable per dim. An empty shape calls `body` once with no variables;
    /// a zero dim emits nothing.
    pub fn for_nest<F>(&mut self, shape: &[usize], mut body: F) -> CgResult<()>
    where
        F: FnMut(&mut Self, &[IntValue<'ctx>]) -> CgResult<()>,
    {
        if shape.contains(&0) {
            return Ok(());
        }
        let mut ivs = Vec::with_capacity(shape.len());
        self.nest_rec(shape, &mut ivs, &mut body)
    }

    fn nest_rec(
        &mut self,
        shape: &[usize],
        ivs: &mut Vec<IntValue<'ctx>>,
        body: &mut NestBody<'_, 'a, 'ctx>,
    ) -> CgResult<()> {
        let d = ivs.len();
        if d == shape.len() {
            return body(self, ivs);
        }
        self.for_range(0, shape[d] as i64, |cx, i| {
            ivs.push(i);
            let r = cx.nest_rec(shape, ivs, body);
            ivs.pop();
            r
        })
    }

    /// `base + Σ ivs[d] * strides[d]` as an i64 (zero strides cost nothing).
    pub fn dot(
        &self,
        ivs: &[IntValue<'ctx>],
        strides: &[i64],
        base: i64,
    ) -> CgResult<IntValue<'ctx>> {
        let mut acc: Option<IntValue<'ctx>> = None;
        for (iv, &s) in ivs.iter().zip(strides) {
            if s == 0 {
                continue;
            }
            let t = self.mul_c(*iv, s)?;
            acc = Some(match acc {
                None => t,
                Some(a) => self.add(a, t)?,
            });
        }
        match acc {
            None => Ok(self.i64(base)),
            Some(a) => self.add_c(a, base),
        }
    }

    pub(crate) fn current_block(&self) -> CgResult<inkwell::basic_block::BasicBlock<'ctx>> {
        self.b
            .get_insert_block()
            .ok_or_else(|| crate::CodegenError::Llvm("builder is not positioned".into()))
    }
}

/// Merges adjacent dims that every operand walks contiguously, and drops
/// size-1 dims. `strides[k]` are operand `k`'s element strides over `shape`
/// (0 for broadcast dims, negative allowed). Returns the reduced shape and
/// strides; iterating the result visits the same elements in the same order.
pub fn coalesce(shape: &[usize], strides: &[Vec<i64>]) -> (Vec<usize>, Vec<Vec<i64>>) {
    let mut out_shape: Vec<usize> = vec![];
    let mut out_strides: Vec<Vec<i64>> = vec![vec![]; strides.len()];
    for d in 0..shape.len() {
        if shape[d] == 1 {
            continue;
        }
        let mergeable = !out_shape.is_empty()
            && strides
                .iter()
                .zip(&out_strides)
                .all(|(s, o)| o.last().copied() == Some(s[d] * shape[d] as i64));
        if mergeable {
            if let Some(last) = out_shape.last_mut() {
                *last *= shape[d];
            }
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                if let Some(l) = o.last_mut() {
                    *l = s[d];
                }
            }
        } else {
            out_shape.push(shape[d]);
            for (s, o) in strides.iter().zip(out_strides.iter_mut()) {
                o.push(s[d]);
            }
        }
    }
    (out_shape, out_strides)
}

#[cfg(test)]
mod tests {
    use super::coalesce;
    use crate::cx::KernelCx;
    use crate::portable::TargetFacts;
    use crate::Options;
    use inkwell::context::Context;
    use inkwell::targets::FileType;
    use inkwell::values::{IntValue, PointerValue};
    use qcc_ir::DType;

    /// Emits `void loops(int64_t lo, int64_t hi, int64_t *out)` exercising every
    /// loop form, links it with a C main and returns what the program prints.
    #[test]
    fn loops_run_the_right_iterations() {
        let chosen = crate::target::choose(&Options::default()).expect("host target");
        let ctx = Context::create();
        let module = ctx.create_module("loops");
        module.set_triple(&chosen.machine.get_triple());
        let i64t = ctx.i64_type();
        let ptr = ctx.ptr_type(inkwell::AddressSpace::default());
        let f = module.add_function(
            "loops",
            ctx.void_type()
                .fn_type(&[i64t.into(), i64t.into(), ptr.into()], false),
            None,
        );
        let b = ctx.create_builder();
        b.position_at_end(ctx.append_basic_block(f, "entry"));
        let mut cx = KernelCx {
            ctx: &ctx,
            module: &module,
            b: &b,
            func: f,
            node_name: "loops".into(),
            op_name: "test",
            target: TargetFacts {
                ptr_bits: 64,
                arm32: false,
                dotprod: false,
                avx512vnni: false,
                amx: false,
                simd: crate::mmm::Simd::Scalar,
                bare_metal: false,
                winograd: false,
                small_weights: false,
                stored_bits: 8,
            },
            scratch: None,
        };
        let p = |k: u32| f.get_nth_param(k).expect("param");
        let (lo, hi) = (p(0).into_int_value(), p(1).into_int_value());
        let out = p(2).into_pointer_value();
        fn add_to<'ctx>(
            cx: &KernelCx<'_, 'ctx>,
            out: PointerValue<'ctx>,
            slot: i64,
            v: IntValue<'ctx>,
        ) -> crate::cx::CgResult<()> {
            let old = cx.load(DType::I64, out, cx.i64(slot))?.into_int_value();
            let new = cx.add(old, v)?;
            cx.store(DType::I64, out, cx.i64(slot), new.into())
        }
        // out[0] = Σ_{i in [lo, hi)} i
        cx.for_range_dyn(lo, hi, |cx, i| add_to(cx, out, 0, i))
            .expect("dyn");
        // out[1] = Σ_{i in 3..17 step 4} i = 3+7+11+15
        cx.for_range_step(3, 17, 4, |cx, i| add_to(cx, out, 1, i))
            .expect("step");
        // out[2] = Σ over a 2x3x4 nest of (12 i + 4 j + k) = Σ 0..24
        cx.for_nest(&[2, 3, 4], |cx, ivs| {
            let v = cx.dot(ivs, &[12, 4, 1], 0)?;
            add_to(cx, out, 2, v)
        })
        .expect("nest");
        // out[3]: a one-trip loop and a zero-trip loop.
        cx.for_range(5, 6, |cx, i| add_to(cx, out, 3, i))
            .expect("one");
        cx.for_range(6, 6, |cx, i| add_to(cx, out, 3, i))
            .expect("zero");
        b.build_return(None).expect("ret");
        module.verify().expect("valid module");
        let obj = chosen
            .machine
            .write_to_memory_buffer(&module, FileType::Object)
            .expect("object");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("l.o"), obj.as_slice()).expect("write");
        std::fs::write(
            dir.path().join("m.c"),
            "#include <stdio.h>\n#include <stdint.h>\nvoid loops(int64_t, int64_t, int64_t *);\n\
             int main(void) { int64_t o[4] = {0}, e[4] = {0};\n\
             loops(-3, 5, o); loops(4, 4, e); loops(9, 2, e);\n\
             printf(\"%lld %lld %lld %lld %lld\\n\", (long long)o[0], (long long)o[1],\n\
             (long long)o[2], (long long)o[3], (long long)e[0]); return 0; }\n",
        )
        .expect("write");
        let st = std::process::Command::new("cc")
            .current_dir(dir.path())
            .args(["m.c", "l.o", "-o", "app"])
            .status()
            .expect("cc");
        assert!(st.success());
        let out = std::process::Command::new(dir.path().join("app"))
            .output()
            .expect("run");
        // Σ_{-3..5} = 4; 3+7+11+15 = 36; Σ 0..24 = 276; 5; empty ranges add 0.
        assert_eq!(String::from_utf8_lossy(&out.stdout), "4 36 276 5 0\n");
    }

    #[test]
    fn coalesce_merges_contiguous_dims() {
        // [2,3,4] dense with itself: one dim of 24.
        let (s, st) = coalesce(&[2, 3, 4], &[vec![12, 4, 1], vec![12, 4, 1]]);
        assert_eq!(s, vec![24]);
        assert_eq!(st, vec![vec![1], vec![1]]);
    }

    #[test]
    fn coalesce_keeps_broadcast_boundaries() {
        // a: [2,3,4] dense; b: [1,3,4] broadcast over dim 0.
        let (s, st) = coalesce(&[2, 3, 4], &[vec![12, 4, 1], vec![0, 4, 1]]);
        assert_eq!(s, vec![2, 12]);
        assert_eq!(st, vec![vec![12, 1], vec![0, 1]]);
    }

    #[test]
    fn coalesce_drops_unit_dims_and_handles_transpose() {
        // transpose [1,2,3] -> read strides of a permuted input.
        let (s, st) = coalesce(&[1, 3, 2], &[vec![0, 2, 1], vec![6, 1, 3]]);
        assert_eq!(s, vec![3, 2]);
        assert_eq!(st, vec![vec![2, 1], vec![1, 3]]);
    }
}
