//! The integer kernels `insert-qdq` builds for modules and single ops (see
//! that pass's header for the rules). Every builder checks everything that
//! could keep the node in float *before* touching the graph.

use crate::context::{Module, ModuleKind, ScaleFormat};
use crate::insert_qdq::{fail, Outcome, Rewriter};
use crate::quantize::gptq;
use crate::quantize::lut;
use crate::quantize::params;
use crate::quantize::weights::{self, Layout};
use crate::PassError;
use qcc_ir::quant::quantize;
use qcc_ir::{
    infer, BinaryOp, ConvAttrs, DType, Epilogue, Node, NodeId, Op, PoolAttrs, QParams, ReduceOp,
    Rescale, Tensor, TensorData, TensorType, UnaryOp, ValueId,
};

/// The output side of a kernel: its epilogue's parameters and clamp, and the
/// table activation (with its output parameters) after it, if any.
struct Target {
    q: QParams,
    lo: i32,
    hi: i32,
    table: Option<(UnaryOp, QParams)>,
}

/// A weighted kernel to build.
struct Weighted {
    /// The float input.
    x: ValueId,
    /// i8 ops applied to the quantized input first (Transpose, Reshape).
    pre: Vec<Op>,
    w: Vec<f32>,
    w_shape: Vec<usize>,
    layout: Layout,
    channels: usize,
    bias: Vec<f32>,
    /// `Some` for QConv, `None` for QGemm.
    conv: Option<ConvAttrs>,
    /// Reshape of the kernel's output (MatMul with a non-2-D A).
    post_shape: Option<Vec<usize>>,
    kind: &'static str,
}

fn float(msg: impl Into<String>) -> Result<Outcome, PassError> {
    Ok(Outcome::Float(msg.into()))
}

fn const_f32(r: &Rewriter, v: ValueId) -> Option<Vec<f32>> {
    r.g.const_value(v)
        .and_then(|t| t.as_f32())
        .map(|d| d.to_vec())
}

fn act_suffix(t: &Target, act: Option<UnaryOp>) -> String {
    match (act, &t.table) {
        (_, Some((u, _))) => format!("+lut({})", Op::Unary(*u).name()),
        (Some(u), None) => format!("+{}", Op::Unary(u).name()),
        (None, None) => String::new(),
    }
}

impl Rewriter<'_> {
    /// The smallest output scale for which `numer / s_y` is representable.
    fn min_scale(&self, numer: f64) -> f64 {
        match self.fmt() {
            ScaleFormat::Pow2 => numer,
            ScaleFormat::FixedPoint => numer / 2f64.powi(30),
        }
    }

    /// Output parameters of a module whose epilogue factor is at most `numer / s_y`.
    fn target(
        &mut self,
        m: &Module,
        act: Option<UnaryOp>,
        numer: f64,
    ) -> Result<Target, PassError> {
        let fmt = self.fmt();
        let min = self.min_scale(numer);
        let clamp = act.and_then(|u| {
            lut::clamp_bounds(
                &u,
                QParams {
                    scale: 1.0,
                    zero_point: 0,
                },
            )
        });
        let at = match (act, clamp) {
            (Some(_), None) => m.pre_act(),
            _ => m.output(),
        };
        let r = self.range_of(at)?;
        let q = params::at_least(params::activation(r, fmt), r, min, fmt);
        Ok(match act {
            Some(u) if clamp.is_none() => {
                let post = params::activation(self.range_of(m.output())?, fmt);
                Target {
                    q,
                    lo: -128,
                    hi: 127,
                    table: Some((u, post)),
                }
            }
            Some(u) => {
                let (lo, hi) = lut::clamp_bounds(&u, q).unwrap_or((-128, 127));
                Target {
                    q,
                    lo,
                    hi,
                    table: None,
                }
            }
            None => Target {
                q,
                lo: -128,
                hi: 127,
                table: None,
            },
        })
    }

    /// The table of `t`, computed before anything is built.
    fn table_of(&self, t: &Target) -> Result<Option<(Vec<i32>, QParams)>, PassError> {
        match t.table {
            Some((u, post)) => {
                let tab = lut::table(u, t.q, post).map_err(|e| fail(format!("table: {e}")))?;
                Ok(Some((tab, post)))
            }
            None => Ok(None),
        }
    }

    /// Ends a module: the activation's table (if any), then the dequantize
    /// standing for the module's output. Returns the output's parameters and
    /// the name of the node producing them.
    fn finish(
        &mut self,
        m: &Module,
        y: ValueId,
        q: QParams,
        table: Option<(Vec<i32>, QParams)>,
    ) -> Result<(QParams, String), PassError> {
        let (y, q) = match (table, m.act) {
            (Some((table, post)), Some(a)) => {
                let name = self.g.node(a).name.clone();
                let l = self.add_q(
                    Op::Lut {
                        table,
                        to: DType::I8,
                    },
                    name,
                    vec![y],
                    post,
                )?;
                (l, post)
            }
            _ => (y, q),
        };
        let name = self.g.node(y.node).name.clone();
        self.emit(m.output(), y, q)?;
        Ok((q, name))
    }

    /// Converts a unified module.
    pub(crate) fn module(&mut self, m: &Module) -> Result<Outcome, PassError> {
        let n = self.g.node(m.anchor).clone();
        let act = match m.act.map(|a| &self.g.node(a).op) {
            Some(Op::Unary(u)) => Some(*u),
            _ => None,
        };
        match m.kind {
            ModuleKind::Conv => self.conv(m, act, &n),
            ModuleKind::Gemm => self.gemm(m, act, &n),
            ModuleKind::MatMul => self.matmul(m, act, &n),
            ModuleKind::BatchNorm => self.batch_norm(m, act, &n),
            ModuleKind::Add | ModuleKind::Sub | ModuleKind::Mul | ModuleKind::ActMatMul => {
                self.elementwise(m, act, &n)
            }
        }
    }

    fn conv(&mut self, m: &Module, act: Option<UnaryOp>, n: &Node) -> Result<Outcome, PassError> {
        let Op::Conv(attrs) = &n.op else {
            return Err(fail(format!("internal: '{}' is not a conv", n.name)));
        };
        let ins = n.inputs();
        let Some(w) = const_f32(self, ins[1]) else {
            return float("the weight is not a constant");
        };
        let w_shape = self.g.value_type(ins[1]).shape.clone();
        let channels = w_shape[0];
        let bias = match ins.get(2) {
            Some(b) => match const_f32(self, *b) {
                Some(b) => b,
                None => return float("the bias is not a constant"),
            },
            None => vec![0.0; channels],
        };
        self.weighted(
            m,
            act,
            n,
            Weighted {
                x: ins[0],
                pre: vec![],
                w,
                w_shape,
                layout: Layout::Rows,
                channels,
                bias,
                conv: Some(attrs.clone()),
                post_shape: None,
                kind: "qconv",
            },
        )
    }

    fn gemm(&mut self, m: &Module, act: Option<UnaryOp>, n: &Node) -> Result<Outcome, PassError> {
        let Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } = n.op
        else {
            return Err(fail(format!("internal: '{}' is not a gemm", n.name)));
        };
        let ins = n.inputs();
        let Some(b) = const_f32(self, ins[1]) else {
            return float("B is not a constant");
        };
        let bs = self.g.value_type(ins[1]).shape.clone();
        let (k, cols) = if trans_b {
            (bs[1], bs[0])
        } else {
            (bs[0], bs[1])
        };
        let mut w = vec![0f32; k * cols];
        for kk in 0..k {
            for j in 0..cols {
                let src = if trans_b {
                    b[j * k + kk]
                } else {
                    b[kk * cols + j]
                };
                w[kk * cols + j] = alpha * src;
            }
        }
        let bias = match ins.get(2) {
            None => vec![0.0; cols],
            Some(c) => {
                let Some(cv) = const_f32(self, *c) else {
                    return float("C is not a constant");
                };
                let shape = &self.g.value_type(*c).shape;
                if cv.len() == 1 {
                    vec![beta * cv[0]; cols]
                } else if cv.len() == cols && shape.last() == Some(&cols) {
                    cv.iter().map(|x| beta * x).collect()
                } else {
                    return float("C is not one value per output column");
                }
            }
        };
        let pre = if trans_a {
            vec![Op::Transpose { perm: vec![1, 0] }]
        } else {
            vec![]
        };
        self.weighted(
            m,
            act,
            n,
            Weighted {
                x: ins[0],
                pre,
                w,
                w_shape: vec![k, cols],
                layout: Layout::Cols,
                channels: cols,
                bias,
                conv: None,
                post_shape: None,
                kind: "qgemm",
            },
        )
    }

    fn matmul(&mut self, m: &Module, act: Option<UnaryOp>, n: &Node) -> Result<Outcome, PassError> {
        let ins = n.inputs();
        let Some(w) = const_f32(self, ins[1]) else {
            return float("B is not a constant");
        };
        // The bias Add's constant (fuse-modules checked its shape).
        let bias = match m.bias {
            Some(b) => {
                let bi = self.g.node(b).inputs();
                let c = if bi[0] == ValueId::of(m.anchor) {
                    bi[1]
                } else {
                    bi[0]
                };
                match const_f32(self, c) {
                    Some(v) => Some(v),
                    None => return float("the bias is not a constant"),
                }
            }
            None => None,
        };
        let bs = self.g.value_type(ins[1]).shape.clone();
        let (k, cols) = (bs[0], bs[1]);
        let a = self.g.value_type(ins[0]).clone();
        let (pre, post_shape) = if a.rank() == 2 {
            (vec![], None)
        } else {
            let rows = a.numel() / k.max(1);
            (
                vec![Op::Reshape {
                    shape: vec![rows, k],
                }],
                Some(n.outputs[0].shape.clone()),
            )
        };
        self.weighted(
            m,
            act,
            n,
            Weighted {
                x: ins[0],
                pre,
                w,
                w_shape: vec![k, cols],
                layout: Layout::Cols,
                channels: cols,
                bias: bias.unwrap_or_else(|| vec![0.0; cols]),
                conv: None,
                post_shape,
                kind: "qgemm",
            },
        )
    }

    fn batch_norm(
        &mut self,
        m: &Module,
        act: Option<UnaryOp>,
        n: &Node,
    ) -> Result<Outcome, PassError> {
        let Op::BatchNorm { epsilon } = n.op else {
            return Err(fail(format!("internal: '{}' is not a batch norm", n.name)));
        };
        let ins = n.inputs();
        let p: Option<Vec<Vec<f32>>> = ins[1..].iter().map(|v| const_f32(self, *v)).collect();
        let Some(p) = p else {
            return float("the batch norm parameters are not constants");
        };
        let (scale, shift, mean, var) = (&p[0], &p[1], &p[2], &p[3]);
        let x = self.g.value_type(ins[0]).clone();
        let (c, sp) = (x.shape[1], x.rank() - 2);
        let w: Vec<f32> = (0..c)
            .map(|i| scale[i] / (var[i] + epsilon).sqrt())
            .collect();
        let bias = (0..c).map(|i| shift[i] - mean[i] * w[i]).collect();
        let mut w_shape = vec![c, 1];
        w_shape.extend(vec![1; sp]);
        self.weighted(
            m,
            act,
            n,
            Weighted {
                x: ins[0],
                pre: vec![],
                w,
                w_shape,
                layout: Layout::Rows,
                channels: c,
                bias,
                conv: Some(ConvAttrs {
                    strides: vec![1; sp],
                    pads: vec![0; 2 * sp],
                    dilations: vec![1; sp],
                    group: c,
                    output_padding: vec![0; sp],
                }),
                post_shape: None,
                kind: "qconv(batch_norm)",
            },
        )
    }

    fn weighted(
        &mut self,
        m: &Module,
        act: Option<UnaryOp>,
        n: &Node,
        s: Weighted,
    ) -> Result<Outcome, PassError> {
        let fmt = self.fmt();
        let px = self.params(s.x)?;
        let bits = self.cfg.bits_of(&n.name);
        let ternary = self.cfg.is_ternary(&n.name);
        let groups = s.conv.as_ref().map_or(1, |c| c.group.max(1));
        let moments = self.layer_inputs.get(&m.anchor).filter(|_| bits < 8);
        let key = {
            // The float weights' fingerprint (FNV-1a over their bits:
            // SipHash took 4% of `--quantize auto` on MobileNetV2).
            let what = format!("{fmt:?} {:?} {} {groups}", s.layout, self.cfg.per_channel);
            let words = s.w.iter().map(|v| v.to_bits() as u64);
            let h = words
                .chain(what.bytes().map(u64::from))
                .chain([s.channels as u64])
                .fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
                    (h ^ x).wrapping_mul(0x0000_0100_0000_01b3)
                });
            (n.name.clone(), bits, ternary, h)
        };
        let quantized: Result<_, String> = self.cfg.memo.get_or(key, || {
            let mut qw = if ternary {
                weights::ternarize(&s.w, s.channels, s.layout, self.cfg.per_channel, fmt)
            } else {
                weights::quantize(&s.w, s.channels, s.layout, self.cfg.per_channel, fmt, bits)
            }?;
            if let Some(mom) = moments {
                // Below 8 bits, round against the layer's input Hessian.
                let qmax = ((1i32 << (bits - 1)) - 1) as f64;
                gptq::refine(&s.w, &mut qw, (s.channels, s.layout, groups), qmax, mom);
            }
            Ok(qw)
        });
        let qw = match quantized {
            Ok(q) => q,
            Err(e) => return float(e),
        };
        let numer: Vec<f64> = qw
            .scales
            .iter()
            .map(|&sw| px.scale as f64 * sw as f64)
            .collect();
        let t = self.target(m, act, numer.iter().cloned().fold(0.0, f64::max))?;
        let reals: Vec<f64> = numer.iter().map(|x| x / t.q.scale as f64).collect();
        let Some(rescale) = params::rescale_per_channel(&reals, fmt) else {
            return float(format!(
                "the epilogue factors {reals:?} cannot be represented"
            ));
        };
        // Below 8 bits, the bias absorbs the mean error the rounded weights
        // make on calibration's input means: `Σ_k (w - ŵ)[m,k] · E[x_k]`.
        let mut bias_f = s.bias.clone();
        if let Some(mom) = moments {
            weights::correct_bias(
                &mut bias_f,
                (&s.w, &qw),
                (s.channels, s.layout, groups),
                &mom.means(),
            );
        }
        let bq = match weights::bias(&bias_f, px.scale, &qw.scales) {
            Ok(b) => b,
            Err(e) => return float(e),
        };
        if let Err(e) = weights::check_accumulator(&qw.data, &bq, s.channels, s.layout) {
            return float(e);
        }
        let table = self.table_of(&t)?;

        let name = n.name.clone();
        let mut xi = self.quantized(s.x, px)?;
        for (i, op) in s.pre.into_iter().enumerate() {
            xi = self.add_q(op, format!("{name}/input{i}"), vec![xi], px)?;
        }
        // The weights' width rides on their type too (what codegen stores
        // them in): the fewest bits that hold them, at most `bits`.
        let width = qcc_ir::AxisQuant::bits_for(qw.data.iter().map(|&x| x.into()), true);
        let wt = Tensor::new(s.w_shape, TensorData::I8(qw.data))
            .ok_or_else(|| fail("internal: weight shape".into()))?;
        let bt = Tensor::new(vec![s.channels], TensorData::I32(bq))
            .ok_or_else(|| fail("internal: bias shape".into()))?;
        let wc = ValueId::of(self.g.add_const(format!("{name}/weight_q"), wt));
        // The weights' scales ride on their type (one per output channel:
        // axis 0 of a convolution's, 1 of a GEMM's `[K, N]`).
        let axis = if s.conv.is_some() { 0 } else { 1 };
        let scales = (0..s.channels)
            .map(|c| qw.scales[c.min(qw.scales.len() - 1)])
            .collect();
        self.g.set_axis_quant(
            wc,
            Some(qcc_ir::AxisQuant {
                axis,
                scales,
                zero_points: vec![0],
                bits: width,
            }),
        );
        let bc = ValueId::of(self.g.add_const(format!("{name}/bias_q"), bt));
        let epi = Epilogue {
            rescale,
            zero_point: t.q.zero_point,
            min: t.lo,
            max: t.hi,
        };
        let op = match s.conv {
            Some(conv) => Op::QConv {
                conv,
                x_zero_point: px.zero_point,
                epi,
                to: DType::I8,
            },
            None => Op::QGemm {
                a_zero_point: px.zero_point,
                epi,
                to: DType::I8,
            },
        };
        let mut y = self.add_q(op, name.clone(), vec![xi, wc, bc], t.q)?;
        if let Some(shape) = s.post_shape {
            y = self.add_q(
                Op::Reshape { shape },
                format!("{name}/reshape"),
                vec![y],
                t.q,
            )?;
        }
        let kind = format!("{}{}", s.kind, act_suffix(&t, act));
        let (q, out_node) = self.finish(m, y, t.q, table)?;
        let mut l = self.layer(&name, kind, m.output(), q, &out_node);
        l.weight_bits = bits;
        l.ternary = ternary;
        let lo = qw.scales.iter().cloned().fold(f32::INFINITY, f32::min);
        let hi = qw.scales.iter().cloned().fold(0.0, f32::max);
        l.weight_scale = Some((lo, hi));
        l.weight_sqnr_db = Some(qw.sqnr_db);
        self.stats.layers.push(l);
        Ok(Outcome::Done)
    }

    fn elementwise(
        &mut self,
        m: &Module,
        act: Option<UnaryOp>,
        n: &Node,
    ) -> Result<Outcome, PassError> {
        let (a, b) = (n.inputs()[0], n.inputs()[1]);
        if !self.any_int(&[a, b]) {
            return float("no operand comes from integer code");
        }
        if m.kind == ModuleKind::ActMatMul {
            let i8t = |v: ValueId| TensorType::new(DType::I8, self.g.value_type(v).shape.clone());
            let probe = Op::QMatMul {
                a_zero_point: 0,
                b_zero_point: 0,
                epi: Epilogue {
                    rescale: qcc_ir::Rescale::uniform(1, 0),
                    zero_point: 0,
                    min: -128,
                    max: 127,
                },
                to: DType::I8,
            };
            if infer(&probe, &[&i8t(a), &i8t(b)]).is_err() {
                return float("the matrix product could overflow i32 or its shapes do not fit");
            }
        }
        let fmt = self.fmt();
        let (pa, pb) = (self.params(a)?, self.params(b)?);
        let (sa, sb) = (pa.scale as f64, pb.scale as f64);
        let (numer, muls) = match m.kind {
            ModuleKind::Mul | ModuleKind::ActMatMul => (sa * sb, None),
            kind => {
                let (am, bm, numer) = params::add_operands(sa, sb, kind == ModuleKind::Sub);
                (numer, Some((am, bm)))
            }
        };
        let t = self.target(m, act, numer)?;
        let Some(rescale) = params::rescale(numer / t.q.scale as f64, fmt) else {
            return float(format!(
                "the epilogue factor {} cannot be represented",
                numer / t.q.scale as f64
            ));
        };
        let table = self.table_of(&t)?;
        let ai = self.quantized(a, pa)?;
        let bi = self.quantized(b, pb)?;
        let epi = Epilogue {
            rescale,
            zero_point: t.q.zero_point,
            min: t.lo,
            max: t.hi,
        };
        let op = match muls {
            Some((a_multiplier, b_multiplier)) => Op::QAdd {
                a_zero_point: pa.zero_point,
                a_multiplier,
                b_zero_point: pb.zero_point,
                b_multiplier,
                epi,
                to: DType::I8,
            },
            None if m.kind == ModuleKind::ActMatMul => Op::QMatMul {
                a_zero_point: pa.zero_point,
                b_zero_point: pb.zero_point,
                epi,
                to: DType::I8,
            },
            None => Op::QMul {
                a_zero_point: pa.zero_point,
                b_zero_point: pb.zero_point,
                epi,
                to: DType::I8,
            },
        };
        let y = self.add_q(op, n.name.clone(), vec![ai, bi], t.q)?;
        let kind = format!(
            "{}{}",
            match m.kind {
                ModuleKind::ActMatMul => "matmul",
                k => Op::Binary(binary(k)).name(),
            },
            act_suffix(&t, act)
        );
        let (q, out_node) = self.finish(m, y, t.q, table)?;
        let l = self.layer(&n.name, format!("q{kind}"), m.output(), q, &out_node);
        self.stats.layers.push(l);
        Ok(Outcome::Done)
    }

    /// Converts a node outside any module; `None` when there is nothing to report.
    pub(crate) fn single(&mut self, id: NodeId, op: &Op) -> Result<Option<Outcome>, PassError> {
        let n = self.g.node(id).clone();
        if !n.outputs[0].dtype.is_float() {
            return Ok(None);
        }
        let x = n.inputs().first().copied();
        let int_in = self.any_int(n.inputs());
        let out = match op {
            Op::Unary(UnaryOp::Relu | UnaryOp::Clip { .. }) => return Ok(None),
            Op::Unary(u) if lut::is_module_activation(u) && int_in => self.lut(id, &n, *u)?,
            Op::AveragePool(p) if int_in => self.avg_pool(id, &n, p)?,
            Op::Reduce {
                op: ReduceOp::Mean,
                axes,
                keepdims,
            } if int_in => {
                let x_shape = &self.g.value_type(n.inputs()[0]).shape;
                let count = axes.iter().map(|&a| x_shape[a]).product();
                let op = |x_zero_point, epi| Op::QMean {
                    axes: axes.clone(),
                    keepdims: *keepdims,
                    x_zero_point,
                    epi,
                };
                self.pool_like(id, &n, count, &op)?
            }
            Op::MaxPool(_) | Op::Reshape { .. } | Op::Transpose { .. } | Op::Slice { .. }
                if int_in =>
            {
                self.passthrough(id, &n, op.clone())?
            }
            Op::Pad { pads, value } if int_in => {
                let px = self.params(n.inputs()[0])?;
                let v = quantize(*value, px, -128, 127) as f32;
                self.passthrough(
                    id,
                    &n,
                    Op::Pad {
                        pads: pads.clone(),
                        value: v,
                    },
                )?
            }
            Op::Concat { axis } if int_in => self.concat(id, &n, *axis)?,
            Op::Softmax { axis } if int_in => self.softmax(id, &n, *axis)?,
            Op::Binary(BinaryOp::Div) if self.is_int(n.inputs()[0]) => self.relabel(id, &n)?,
            Op::Unary(_)
            | Op::AveragePool(_)
            | Op::Reduce {
                op: ReduceOp::Mean, ..
            }
            | Op::MaxPool(_)
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::Pad { .. }
            | Op::Concat { .. }
                if x.is_some() && lut_or_layout(op) =>
            {
                Outcome::Float("its input comes from float code".into())
            }
            Op::Conv(_) | Op::Gemm { .. } | Op::MatMul | Op::BatchNorm { .. } => {
                Outcome::Float("weights or parameters are not constants".into())
            }
            Op::SignMatMul { .. } | Op::SignConv { .. } => Outcome::Float(
                "a binary layer (1-bit weights and activations, popcount; f32 sums)".into(),
            ),
            _ => Outcome::Float("no integer kernel".into()),
        };
        Ok(Some(out))
    }

    fn lut(&mut self, id: NodeId, n: &Node, u: UnaryOp) -> Result<Outcome, PassError> {
        let x = n.inputs()[0];
        let out = ValueId::of(id);
        let px = self.params(x)?;
        let post = params::activation(self.range_of(out)?, self.fmt());
        let table = lut::table(u, px, post).map_err(|e| fail(format!("table: {e}")))?;
        let xi = self.quantized(x, px)?;
        let y = self.add_q(
            Op::Lut {
                table,
                to: DType::I8,
            },
            n.name.clone(),
            vec![xi],
            post,
        )?;
        self.emit(out, y, post)?;
        let l = self.layer(&n.name, format!("lut({})", n.op.name()), out, post, &n.name);
        self.stats.layers.push(l);
        Ok(Outcome::Done)
    }

    fn avg_pool(&mut self, id: NodeId, n: &Node, p: &PoolAttrs) -> Result<Outcome, PassError> {
        let x = self.g.value_type(n.inputs()[0]).clone();
        let probe = Op::QAvgPool {
            pool: p.clone(),
            x_zero_point: 0,
            epi: Epilogue {
                rescale: Rescale::uniform(1, 0),
                zero_point: 0,
                min: -128,
                max: 127,
            },
        };
        if let Err(e) = infer(&probe, &[&TensorType::new(DType::I8, x.shape.clone())]) {
            return float(format!("no integer average pool: {e}"));
        }
        let count = p.kernel.iter().product();
        let op = |x_zero_point, epi| Op::QAvgPool {
            pool: p.clone(),
            x_zero_point,
            epi,
        };
        self.pool_like(id, n, count, &op)
    }

    /// A mean over `count` cells: `QAvgPool` or `QMean` built by `make`.
    fn pool_like(
        &mut self,
        id: NodeId,
        n: &Node,
        count: usize,
        make: &dyn Fn(i32, Epilogue) -> Op,
    ) -> Result<Outcome, PassError> {
        let fmt = self.fmt();
        if fmt == ScaleFormat::Pow2 && !count.is_power_of_two() {
            return float(format!(
                "a mean of {count} cells is not a power-of-two rescale (--scales pow2)"
            ));
        }
        if 255 * count as u128 > i32::MAX as u128 || count == 0 {
            return float(format!(
                "the i32 accumulator could overflow (sum of {count} cells)"
            ));
        }
        let x = n.inputs()[0];
        let out = ValueId::of(id);
        let px = self.params(x)?;
        let numer = px.scale as f64 / count as f64;
        let r = self.range_of(out)?;
        let q = params::at_least(params::activation(r, fmt), r, self.min_scale(numer), fmt);
        let Some(rescale) = params::rescale(numer / q.scale as f64, fmt) else {
            return float("the epilogue factor cannot be represented");
        };
        let epi = Epilogue {
            rescale,
            zero_point: q.zero_point,
            min: -128,
            max: 127,
        };
        let xi = self.quantized(x, px)?;
        let y = self.add_q(make(px.zero_point, epi), n.name.clone(), vec![xi], q)?;
        self.emit(out, y, q)?;
        let kind = format!("q{}", n.op.name());
        let l = self.layer(&n.name, kind, out, q, &n.name);
        self.stats.layers.push(l);
        Ok(Outcome::Done)
    }

    /// An op that moves 8-bit values without arithmetic: same parameters out as in.
    /// Softmax along the last axis of an integer input: `QSoftmax`, whose
    /// output is always the probabilities in steps of 1/256 (int8, zero
    /// point -128), whatever the calibrated range. A softmax that is a graph
    /// output stays float: nothing integer reads it, and 1/256 steps would
    /// only cost precision (measured: mlp's probabilities 43.9 → 41.0 dB).
    fn softmax(&mut self, id: NodeId, n: &Node, axis: usize) -> Result<Outcome, PassError> {
        let x = n.inputs()[0];
        if axis + 1 != self.g.value_type(x).rank() {
            return float("the softmax is not along the last axis");
        }
        if self.g.is_output(ValueId::of(id)) {
            return float("a graph output: nothing integer reads it");
        }
        let px = self.params(x)?;
        let q = QParams {
            scale: 1.0 / 256.0,
            zero_point: -128,
        };
        let xi = self.quantized(x, px)?;
        let op = Op::QSoftmax {
            table: qcc_ir::quant::softmax_table(px.scale),
            scale_inv: 256,
            zero_point: q.zero_point,
            to: DType::I8,
        };
        let out = ValueId::of(id);
        let y = self.add_q(op, n.name.clone(), vec![xi], q)?;
        self.emit(out, y, q)?;
        let l = self.layer(&n.name, "qsoftmax".into(), out, q, &n.name);
        self.stats.layers.push(l);
        Ok(Outcome::Done)
    }

    /// An integer value divided by a positive constant scalar `c`: the same
    /// integers with scale `s / c`, carried by an identity `Requantize` (which
    /// `cancel-qdq` merges into the kernel producing them; with power-of-two
    /// scales only when `c` is one).
    fn relabel(&mut self, id: NodeId, n: &Node) -> Result<Outcome, PassError> {
        let (x, c) = (n.inputs()[0], n.inputs()[1]);
        let c = match self.g.const_scalar(c) {
            Some(c) if c.is_finite() && c > 0.0 => c,
            _ => return float("no integer kernel"),
        };
        let px = self.params(x)?;
        let scale = px.scale / c;
        let pow2 = qcc_ir::quant::is_power_of_two;
        if !(scale.is_normal()) || (self.fmt() == ScaleFormat::Pow2 && !pow2(c)) {
            return float("the scale divided by the constant is not representable");
        }
        let q = QParams {
            scale,
            zero_point: px.zero_point,
        };
        let xi = self.quantized(x, px)?;
        let op = Op::Requantize {
            in_zero_point: px.zero_point,
            epi: Epilogue {
                rescale: Rescale::uniform(1, 0),
                zero_point: px.zero_point,
                min: -128,
                max: 127,
            },
            to: DType::I8,
        };
        let y = self.add_q(op, n.name.clone(), vec![xi], q)?;
        self.emit(ValueId::of(id), y, q)?;
        Ok(Outcome::Done)
    }

    fn passthrough(&mut self, id: NodeId, n: &Node, op: Op) -> Result<Outcome, PassError> {
        let x = n.inputs()[0];
        let out = ValueId::of(id);
        let px = self.params(x)?;
        let xi = self.quantized(x, px)?;
        let y = self.add_q(op, n.name.clone(), vec![xi], px)?;
        self.emit(out, y, px)?;
        Ok(Outcome::Done)
    }

    /// Concat on i8 with one shared scale: the output's calibrated range (with
    /// pow2 scales, at least every integer input's scale, so merging their
    /// requantizes never needs a left shift).
    fn concat(&mut self, id: NodeId, n: &Node, axis: usize) -> Result<Outcome, PassError> {
        let fmt = self.fmt();
        let out = ValueId::of(id);
        let r = self.range_of(out)?;
        let mut q = params::activation(r, fmt);
        if fmt == ScaleFormat::Pow2 {
            let mut widest = 0f64;
            for v in n.inputs() {
                if self.is_int(*v) {
                    widest = widest.max(self.params(*v)?.scale as f64);
                }
            }
            q = params::at_least(q, r, widest, fmt);
        }
        let mut ins = vec![];
        for v in n.inputs() {
            ins.push(self.quantized(*v, q)?);
        }
        let y = self.add_q(Op::Concat { axis }, n.name.clone(), ins, q)?;
        self.emit(out, y, q)?;
        Ok(Outcome::Done)
    }
}

fn binary(k: ModuleKind) -> BinaryOp {
    match k {
        ModuleKind::Sub => BinaryOp::Sub,
        ModuleKind::Mul => BinaryOp::Mul,
        _ => BinaryOp::Add,
    }
}

/// Ops whose integer form exists but needs an integer input.
fn lut_or_layout(op: &Op) -> bool {
    match op {
        Op::Unary(u) => lut::is_module_activation(u),
        _ => true,
    }
}
