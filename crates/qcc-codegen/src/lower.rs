//! Lowers a planned graph into an LLVM module: weights as private constant
//! globals, one internal function per node that computes something, and the
//! two exported entry points `P_run` and `P_workspace_size`.
//!
//! Nodes with the same op, operand types, alignments and constant operands
//! share one function (repeated blocks of a network cost code once).
//!
//! Naming and ordering follow the plan's execution order and weight ids, so
//! the same graph always yields the same module (and object bytes).

use crate::cx::{CgResult, KernelCx, Operand};
use crate::kernels;
use crate::plan_memory::{is_alias, Location, MemoryPlan, WORKSPACE_ALIGN};
use crate::portable::TargetFacts;
use crate::CodegenError;
use inkwell::attributes::{Attribute, AttributeLoc};
use inkwell::builder::Builder;
use inkwell::context::Context;
use inkwell::module::{Linkage, Module};
use inkwell::targets::TargetData;
use inkwell::types::{BasicMetadataTypeEnum, IntType};
use inkwell::values::{FunctionValue, GlobalValue, IntValue, PointerValue};
use inkwell::{AddressSpace, IntPredicate};
use qcc_ir::{Graph, NodeId, Op, Tensor, ValueId, WeightId};
use std::collections::{BTreeMap, HashMap};

/// Alignment of weight globals, in bytes.
const WEIGHT_ALIGN: u32 = 64;

pub(crate) struct Lowering<'a, 'ctx> {
    pub ctx: &'ctx Context,
    pub module: &'a Module<'ctx>,
    pub g: &'a Graph,
    pub plan: &'a MemoryPlan,
    pub prefix: &'a str,
    pub size_t: IntType<'ctx>,
    facts: TargetFacts,
    weights: BTreeMap<WeightId, GlobalValue<'ctx>>,
    /// Node functions by signature (op, operand types and alignments) with the
    /// constant operands they were specialized for.
    #[allow(clippy::type_complexity)]
    shared: HashMap<String, Vec<(Vec<Option<&'a Tensor>>, FunctionValue<'ctx>)>>,
}

fn attr(ctx: &Context, name: &str, val: u64) -> Attribute {
    ctx.create_enum_attribute(Attribute::get_named_enum_kind_id(name), val)
}

impl<'a, 'ctx> Lowering<'a, 'ctx> {
    pub fn new(
        ctx: &'ctx Context,
        module: &'a Module<'ctx>,
        g: &'a Graph,
        plan: &'a MemoryPlan,
        prefix: &'a str,
        td: &TargetData,
        facts: TargetFacts,
    ) -> Self {
        Lowering {
            ctx,
            module,
            g,
            plan,
            prefix,
            size_t: ctx.ptr_sized_int_type(td, None),
            facts,
            weights: BTreeMap::new(),
            shared: HashMap::new(),
        }
    }

    /// Builds everything (with `P_run_profiled` too when `profile`) and
    /// returns the names and ops of the nodes that run, in order: the
    /// nodes `P_run_profiled` times.
    pub fn run(&mut self, profile: bool) -> CgResult<Vec<(String, String)>> {
        let mut calls = vec![];
        for &id in &self.plan.order {
            if let Some(f) = self.node_function(id)? {
                calls.push((id, f));
            }
        }
        self.entry(&calls, false)?;
        if profile {
            self.entry(&calls, true)?;
        }
        self.workspace_size_fn()?;
        Ok(calls
            .iter()
            .map(|&(id, _)| {
                let n = self.g.node(id);
                (n.name.clone(), n.op.name().to_string())
            })
            .collect())
    }

    fn location(&self, v: ValueId) -> CgResult<Location> {
        self.plan.locations.get(&v).copied().ok_or_else(|| {
            CodegenError::Graph(format!(
                "value of node '{}' has no memory location",
                self.g.node(v.node).name
            ))
        })
    }

    /// The private constant global holding weight `w` (created on first use).
    fn weight_global(&mut self, w: WeightId) -> CgResult<GlobalValue<'ctx>> {
        if let Some(gv) = self.weights.get(&w) {
            return Ok(*gv);
        }
        let t = self
            .g
            .weights()
            .get(w.0 as usize)
            .ok_or_else(|| CodegenError::Graph(format!("weight {w} does not exist")))?;
        let bytes = t.to_le_bytes();
        let init = self.ctx.const_string(&bytes, false);
        let gv = self
            .module
            .add_global(init.get_type(), None, &format!("w{}", w.0));
        gv.set_initializer(&init);
        gv.set_constant(true);
        gv.set_linkage(Linkage::Private);
        gv.set_unnamed_addr(true);
        gv.set_alignment(WEIGHT_ALIGN);
        self.weights.insert(w, gv);
        Ok(gv)
    }

    /// Known alignment of the storage at `loc` for elements of `elem` bytes.
    fn align_of(loc: Location, elem: usize) -> u32 {
        match loc {
            Location::Arena { .. } => WORKSPACE_ALIGN as u32,
            Location::Const(_) => WEIGHT_ALIGN,
            Location::Input(_) | Location::Output(_) => elem.max(1) as u32,
        }
    }

    /// Declares and fills the function computing node `id`, if it needs one.
    fn node_function(&mut self, id: NodeId) -> CgResult<Option<FunctionValue<'ctx>>> {
        let g = self.g;
        let node = g.node(id);
        if matches!(node.op, Op::Input { .. } | Op::Const { .. }) || is_alias(g, id) {
            return Ok(None);
        }
        if node.outputs.len() != 1 {
            return Err(CodegenError::Unsupported {
                node: node.name.clone(),
                op: node.op.name(),
                msg: format!("{} outputs (only one is supported)", node.outputs.len()),
            });
        }
        let out_ty = &node.outputs[0];
        if out_ty.numel() == 0 {
            return Ok(None);
        }
        // Operands with their static facts.
        let mut slots: Vec<(ValueId, bool)> = node.inputs().iter().map(|v| (*v, true)).collect();
        slots.push((ValueId::of(id), false));
        let scratch = self.plan.scratch.contains_key(&id);
        let mut facts = vec![];
        let mut sig = format!("{:?}|scratch={scratch}|", node.op);
        for (v, _) in &slots {
            let ty = g.value_type(*v).clone();
            let loc = self.location(*v)?;
            let align = Self::align_of(loc, ty.dtype.size());
            let konst = match loc {
                Location::Const(w) => g.weights().get(w.0 as usize),
                _ => None,
            };
            sig.push_str(&format!("{ty}@{align};"));
            facts.push((ty, align, konst));
        }
        // Nodes with the same op, types, alignments and constants share code.
        let konsts: Vec<Option<&Tensor>> = facts.iter().map(|f| f.2).collect();
        if let Some(same) = self
            .shared
            .get(&sig)
            .and_then(|c| c.iter().find(|(k, _)| *k == konsts))
        {
            return Ok(Some(same.1));
        }

        let ptr = self.ctx.ptr_type(AddressSpace::default());
        let params: Vec<BasicMetadataTypeEnum> =
            vec![ptr.into(); slots.len() + usize::from(scratch)];
        let fty = self.ctx.void_type().fn_type(&params, false);
        let name = format!("{}.n{}.{}", self.prefix, id.index(), node.op.name());
        let f = self
            .module
            .add_function(&name, fty, Some(Linkage::Internal));
        for a in [
            "nounwind",
            "noinline",
            "norecurse",
            "nosync",
            "nofree",
            "willreturn",
        ] {
            f.add_attribute(AttributeLoc::Function, attr(self.ctx, a, 0));
        }
        if self.facts.simd == crate::mmm::Simd::Avx512 {
            crate::mmm::prefer_512(self.ctx, f);
        }

        // Parameters and their attributes.
        let mut ins = vec![];
        for (k, ((_, is_input), (ty, align, konst))) in slots.iter().zip(facts).enumerate() {
            let p = f
                .get_nth_param(k as u32)
                .ok_or_else(|| CodegenError::Llvm("missing parameter".into()))?
                .into_pointer_value();
            p.set_name(if *is_input { "in" } else { "out" });
            let pl = AttributeLoc::Param(k as u32);
            f.add_attribute(pl, attr(self.ctx, "noalias", 0));
            f.add_attribute(pl, attr(self.ctx, "noundef", 0));
            f.add_attribute(pl, attr(self.ctx, "align", align as u64));
            if ty.byte_size() > 0 {
                f.add_attribute(pl, attr(self.ctx, "nonnull", 0));
                f.add_attribute(pl, attr(self.ctx, "dereferenceable", ty.byte_size() as u64));
            }
            if *is_input {
                f.add_attribute(pl, attr(self.ctx, "readonly", 0));
            }
            let op = Operand {
                ptr: p,
                ty,
                konst,
                align,
            };
            ins.push(op);
        }
        let out = ins
            .pop()
            .ok_or_else(|| CodegenError::Llvm("missing output operand".into()))?;
        let scratch_ptr = match scratch {
            true => {
                let k = slots.len() as u32;
                let p = f
                    .get_nth_param(k)
                    .ok_or_else(|| CodegenError::Llvm("missing scratch parameter".into()))?
                    .into_pointer_value();
                p.set_name("scratch");
                let pl = AttributeLoc::Param(k);
                f.add_attribute(pl, attr(self.ctx, "noalias", 0));
                f.add_attribute(pl, attr(self.ctx, "align", WORKSPACE_ALIGN as u64));
                Some(p)
            }
            false => None,
        };

        let b = self.ctx.create_builder();
        let entry = self.ctx.append_basic_block(f, "entry");
        b.position_at_end(entry);
        let mut cx = KernelCx {
            ctx: self.ctx,
            module: self.module,
            b: &b,
            func: f,
            node_name: node.name.clone(),
            op_name: node.op.name(),
            target: self.facts,
            scratch: scratch_ptr,
        };
        kernels::emit_node(&mut cx, node, &ins, &out)?;
        b.build_return(None)?;
        self.shared.entry(sig).or_default().push((konsts, f));
        Ok(Some(f))
    }

    /// The run-time pointer of a location inside the entry function.
    fn pointer(
        &mut self,
        b: &Builder<'ctx>,
        loc: Location,
        io: &Io<'ctx>,
    ) -> CgResult<PointerValue<'ctx>> {
        Ok(match loc {
            Location::Input(i) => *io
                .inputs
                .get(i)
                .ok_or_else(|| CodegenError::Graph(format!("input #{i} is not a graph input")))?,
            Location::Output(j) => *io
                .outputs
                .get(j)
                .ok_or_else(|| CodegenError::Graph(format!("output #{j} is not a graph output")))?,
            Location::Const(w) => self.weight_global(w)?.as_pointer_value(),
            Location::Arena { offset } => {
                if offset == 0 {
                    io.workspace
                } else {
                    // SAFETY: offset lies inside the workspace the caller provides.
                    unsafe {
                        b.build_in_bounds_gep(
                            self.ctx.i8_type(),
                            io.workspace,
                            &[self.ctx.i64_type().const_int(offset as u64, false)],
                            "",
                        )?
                    }
                }
            }
        })
    }

    /// `int P_run(const void *const *inputs, void *const *outputs, void *workspace)`,
    /// or with `profiled`, `int P_run_profiled(inputs, outputs, workspace,
    /// uint64_t (*clock)(void), uint64_t *ticks)`, which stores
    /// `clock() - clock()` around node `i`'s call in `ticks[i]`.
    fn entry(&mut self, calls: &[(NodeId, FunctionValue<'ctx>)], profiled: bool) -> CgResult<()> {
        let ctx = self.ctx;
        let ptr = ctx.ptr_type(AddressSpace::default());
        let i32t = ctx.i32_type();
        let i64t = ctx.i64_type();
        let n_params = if profiled { 5 } else { 3 };
        let params: Vec<BasicMetadataTypeEnum> = vec![ptr.into(); n_params];
        let fty = i32t.fn_type(&params, false);
        let name = if profiled { "run_profiled" } else { "run" };
        let f = self
            .module
            .add_function(&format!("{}_{name}", self.prefix), fty, None);
        f.add_attribute(AttributeLoc::Function, attr(ctx, "nounwind", 0));
        // The entry only checks its arguments and calls the node functions
        // (never inlined): optimizing it gains nothing, while O3 shares every
        // workspace address across calls, and LLVM's register allocator is
        // then quadratic in the calls (10,000 nodes took 10 s, 1.6 s now).
        for a in ["optnone", "noinline"] {
            f.add_attribute(AttributeLoc::Function, attr(ctx, a, 0));
        }
        let param = |k: u32| -> CgResult<PointerValue<'ctx>> {
            Ok(f.get_nth_param(k)
                .ok_or_else(|| CodegenError::Llvm("missing parameter".into()))?
                .into_pointer_value())
        };
        let (inputs, outputs, workspace) = (param(0)?, param(1)?, param(2)?);
        inputs.set_name("inputs");
        outputs.set_name("outputs");
        workspace.set_name("workspace");

        let b = ctx.create_builder();
        let entry = ctx.append_basic_block(f, "entry");
        let load_ptrs = ctx.append_basic_block(f, "load");
        let fail1 = ctx.append_basic_block(f, "null");
        let fail2 = ctx.append_basic_block(f, "misaligned");
        b.position_at_end(fail1);
        b.build_return(Some(&i32t.const_int(1, false)))?;
        b.position_at_end(fail2);
        b.build_return(Some(&i32t.const_int(2, false)))?;

        let n_in = self.g.inputs().len();
        let n_out = self.g.outputs.len();
        let or = |b: &Builder<'ctx>, acc: IntValue<'ctx>, c: IntValue<'ctx>| b.build_or(acc, c, "");

        // 1. The pointer arrays themselves.
        b.position_at_end(entry);
        let mut bad = ctx.bool_type().const_zero();
        if n_in > 0 {
            bad = or(&b, bad, b.build_is_null(inputs, "")?)?;
        }
        if n_out > 0 {
            bad = or(&b, bad, b.build_is_null(outputs, "")?)?;
        }
        let timing = if profiled {
            let (clock, ticks) = (param(3)?, param(4)?);
            clock.set_name("clock");
            ticks.set_name("ticks");
            bad = or(&b, bad, b.build_is_null(clock, "")?)?;
            bad = or(&b, bad, b.build_is_null(ticks, "")?)?;
            Some((clock, ticks))
        } else {
            None
        };
        b.build_conditional_branch(bad, fail1, load_ptrs)?;

        // 2. Every input/output pointer, and the workspace.
        b.position_at_end(load_ptrs);
        let mut io = Io {
            inputs: vec![],
            outputs: vec![],
            workspace,
        };
        let mut bad = ctx.bool_type().const_zero();
        for (arr, n, dst, what) in [
            (inputs, n_in, &mut io.inputs, "in"),
            (outputs, n_out, &mut io.outputs, "out"),
        ] {
            for i in 0..n {
                // SAFETY: the caller passes arrays of n pointers (documented contract).
                let slot = unsafe {
                    b.build_in_bounds_gep(
                        ptr,
                        arr,
                        &[ctx.i64_type().const_int(i as u64, false)],
                        "",
                    )?
                };
                let p = b
                    .build_load(ptr, slot, &format!("{what}{i}"))?
                    .into_pointer_value();
                bad = or(&b, bad, b.build_is_null(p, "")?)?;
                dst.push(p);
            }
        }
        if self.plan.workspace_size > 0 {
            bad = or(&b, bad, b.build_is_null(workspace, "")?)?;
        }
        let check_align = ctx.append_basic_block(f, "align");
        b.build_conditional_branch(bad, fail1, check_align)?;
        b.position_at_end(check_align);
        let addr = b.build_ptr_to_int(workspace, self.size_t, "")?;
        let low = b.build_and(
            addr,
            self.size_t.const_int(WORKSPACE_ALIGN as u64 - 1, false),
            "",
        )?;
        let mis = b.build_int_compare(IntPredicate::NE, low, self.size_t.const_zero(), "")?;
        let body = ctx.append_basic_block(f, "body");
        b.build_conditional_branch(mis, fail2, body)?;
        for blk in [fail1, fail2] {
            blk.move_after(f.get_last_basic_block().unwrap_or(blk))
                .map_err(|()| CodegenError::Llvm("cannot order blocks".into()))?;
        }

        // 3. Node calls in plan order, after asking Linux for the AMX tile
        // state when a kernel uses it.
        b.position_at_end(body);
        if crate::mmm::amx::used_in(self.module) {
            let perm = crate::mmm::amx::request_permission(ctx, &b)?;
            let refused = b.build_int_compare(IntPredicate::NE, perm, i64t.const_zero(), "")?;
            let fail3 = ctx.append_basic_block(f, "no.amx");
            let go = ctx.append_basic_block(f, "nodes");
            b.build_conditional_branch(refused, fail3, go)?;
            b.position_at_end(fail3);
            b.build_return(Some(&i32t.const_int(3, false)))?;
            b.position_at_end(go);
        }
        let clock_t = i64t.fn_type(&[], false);
        let now = |b: &Builder<'ctx>, clock: PointerValue<'ctx>| -> CgResult<IntValue<'ctx>> {
            b.build_indirect_call(clock_t, clock, &[], "t")?
                .try_as_basic_value()
                .basic()
                .map(|v| v.into_int_value())
                .ok_or_else(|| CodegenError::Llvm("clock returns nothing".into()))
        };
        for (i, &(id, callee)) in calls.iter().enumerate() {
            let node = self.g.node(id);
            let mut args = vec![];
            for v in node
                .inputs()
                .iter()
                .chain(std::iter::once(&ValueId::of(id)))
            {
                let loc = self.location(*v)?;
                args.push(self.pointer(&b, loc, &io)?.into());
            }
            if let Some(&offset) = self.plan.scratch.get(&id) {
                let loc = Location::Arena { offset };
                args.push(self.pointer(&b, loc, &io)?.into());
            }
            let t0 = match timing {
                Some((clock, _)) => Some(now(&b, clock)?),
                None => None,
            };
            b.build_call(callee, &args, "")?;
            if let (Some((clock, ticks)), Some(t0)) = (timing, t0) {
                let dt = b.build_int_sub(now(&b, clock)?, t0, "dt")?;
                // SAFETY: the caller passes `ticks` with one slot per profiled node.
                let slot = unsafe {
                    b.build_in_bounds_gep(i64t, ticks, &[i64t.const_int(i as u64, false)], "")?
                };
                b.build_store(slot, dt)?;
            }
        }

        // 4. Outputs not computed in place: copy.
        for (j, o) in self.g.outputs.clone().iter().enumerate() {
            let loc = self.location(o.value)?;
            if loc == Location::Output(j) {
                continue;
            }
            let ty = self.g.value_type(o.value);
            let bytes = ty.byte_size() as u64;
            if bytes == 0 {
                continue;
            }
            let src = self.pointer(&b, loc, &io)?;
            let dst = io.outputs[j];
            let elem = ty.dtype.size() as u32;
            b.build_memcpy(
                dst,
                elem,
                src,
                Self::align_of(loc, elem as usize),
                self.size_t.const_int(bytes, false),
            )?;
        }
        b.build_return(Some(&i32t.const_zero()))?;
        Ok(())
    }

    /// `size_t P_workspace_size(void)`.
    fn workspace_size_fn(&self) -> CgResult<()> {
        let fty = self.size_t.fn_type(&[], false);
        let f = self
            .module
            .add_function(&format!("{}_workspace_size", self.prefix), fty, None);
        f.add_attribute(AttributeLoc::Function, attr(self.ctx, "nounwind", 0));
        let b = self.ctx.create_builder();
        b.position_at_end(self.ctx.append_basic_block(f, "entry"));
        b.build_return(Some(
            &self
                .size_t
                .const_int(self.plan.workspace_size as u64, false),
        ))?;
        Ok(())
    }
}

/// The entry function's view of the caller's buffers.
struct Io<'ctx> {
    inputs: Vec<PointerValue<'ctx>>,
    outputs: Vec<PointerValue<'ctx>>,
    workspace: PointerValue<'ctx>,
}
