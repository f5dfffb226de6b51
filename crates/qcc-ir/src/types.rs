//! Element types, shapes and tensor types.

use std::fmt;

/// Element type of a tensor. Closed: adding one means touching every backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    I64,
    I32,
    I8,
    U8,
    Bool,
}

impl DType {
    /// Size of one element in bytes (Bool is stored as one byte).
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::I64 => 8,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// Short name used by the printer and error messages (`f32`, `i64`, …).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::Bool => "bool",
        }
    }

    /// The C type the generated header uses for this element type.
    pub fn c_name(self) -> &'static str {
        match self {
            DType::F32 => "float",
            DType::I64 => "int64_t",
            DType::I32 => "int32_t",
            DType::I8 => "int8_t",
            DType::U8 => "uint8_t",
            DType::Bool => "bool",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A static shape. qcc compiles ahead of time: every dimension is known.
pub type Shape = Vec<usize>;

/// Number of elements of a shape (1 for a scalar).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides (in elements) of a shape.
pub fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Numpy-style multidirectional broadcasting of two shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Shape> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for (i, o) in out.iter_mut().enumerate() {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        *o = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Strides (in elements) to read a tensor of shape `from` as if it had been
/// broadcast to shape `to`: broadcast dimensions get stride 0. `to.len() >= from.len()`.
pub fn broadcast_strides(from: &[usize], to: &[usize]) -> Vec<usize> {
    let own = strides_of(from);
    let off = to.len() - from.len();
    (0..to.len())
        .map(|i| {
            if i < off || from[i - off] == 1 {
                0
            } else {
                own[i - off]
            }
        })
        .collect()
}

/// Per-channel quantization of a constant (an integer kernel's weights):
/// `real = scales[c] · (q - zero_points[c])` for index `c` along `axis` (one
/// zero point: the same for every channel). `fold-qdq` records the model's
/// own weight scales, `insert-qdq` the ones it chose; `--emit onnx` writes
/// them, the verifier checks them against the weights' shape.
///
/// `bits` is the integers' width (2 to 8; the signedness is the constant's
/// element type): every stored value lies in [`AxisQuant::range`], which
/// the verifier checks, and codegen stores the weights that narrow (two or
/// four to a byte) because the type says so, not by looking at the values.
#[derive(Clone, Debug, PartialEq)]
pub struct AxisQuant {
    pub axis: usize,
    pub scales: Vec<f32>,
    pub zero_points: Vec<i32>,
    pub bits: u32,
}

impl Eq for AxisQuant {}

impl std::hash::Hash for AxisQuant {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.axis.hash(h);
        for s in &self.scales {
            s.to_bits().hash(h);
        }
        self.zero_points.hash(h);
        self.bits.hash(h);
    }
}

impl AxisQuant {
    /// The values a `bits`-bit integer holds: `[-2^(bits-1), 2^(bits-1))`
    /// signed, `[0, 2^bits)` unsigned.
    pub fn range(bits: u32, signed: bool) -> (i64, i64) {
        let b = bits.clamp(1, 32);
        if signed {
            (-(1i64 << (b - 1)), (1i64 << (b - 1)) - 1)
        } else {
            (0, (1i64 << b) - 1)
        }
    }

    /// The fewest bits, 2 to 8, that hold every value of `v`.
    pub fn bits_for(v: impl IntoIterator<Item = i64>, signed: bool) -> u32 {
        let (lo, hi) = v
            .into_iter()
            .fold((0, 0), |(lo, hi), x| (x.min(lo), x.max(hi)));
        (2..8)
            .find(|&b| {
                let (min, max) = Self::range(b, signed);
                min <= lo && hi <= max
            })
            .unwrap_or(8)
    }

    /// Channel `c`'s zero point.
    pub fn zero_point(&self, c: usize) -> i32 {
        self.zero_points[c.min(self.zero_points.len().saturating_sub(1))]
    }

    /// Why these parameters do not fit a `shape` weight, if they do not.
    pub fn check(&self, shape: &[usize]) -> Result<(), String> {
        let n = shape.get(self.axis).copied().ok_or_else(|| {
            format!(
                "quantization axis {} past the rank {}",
                self.axis,
                shape.len()
            )
        })?;
        if self.scales.len() != n {
            return Err(format!("{} scales for {n} channels", self.scales.len()));
        }
        if self.zero_points.len() != 1 && self.zero_points.len() != n {
            return Err(format!(
                "{} zero points for {n} channels",
                self.zero_points.len()
            ));
        }
        if let Some(s) = self.scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(format!("scale {s} is not a positive number"));
        }
        if !(1..=8).contains(&self.bits) {
            return Err(format!("{}-bit weights (1 to 8 bits)", self.bits));
        }
        Ok(())
    }
}

/// The type of every value in the IR: element type (with its width and
/// signedness), static shape, and for a quantized 8-bit activation the
/// real numbers its integers stand for (for an integer kernel's weights,
/// per channel).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Shape,
    /// `real = scale · (q - zero_point)`, per tensor. Shape inference sets
    /// it where the op decides it (`Quantize`, and the layout ops that move
    /// 8-bit values unchanged, [`crate::Op::keeps_quant`]); the
    /// quantization passes set it on what their integer kernels produce;
    /// the header, `--emit onnx` and `--stats` read it.
    pub quant: Option<crate::quant::QParams>,
    /// Per-channel parameters of an integer kernel's constant weights.
    pub axis_quant: Option<Box<AxisQuant>>,
}

impl TensorType {
    /// Bits each element of an integer kernel's int8 weights of this type is
    /// stored in: 2 when their width (`AxisQuant::bits`) is 2 (within
    /// [-2, 1]), 4 when 3 or 4 (within [-8, 7]), else 8. Codegen packs them
    /// two or four to a byte; `--emit onnx` writes 4 and 2 as ONNX INT4.
    pub fn packed_bits(&self) -> u32 {
        match self.axis_quant.as_deref() {
            Some(a) if self.dtype == DType::I8 && a.bits <= 2 => 2,
            Some(a) if self.dtype == DType::I8 && a.bits <= 4 => 4,
            _ => 8,
        }
    }

    pub fn new(dtype: DType, shape: impl Into<Shape>) -> Self {
        TensorType {
            dtype,
            shape: shape.into(),
            quant: None,
            axis_quant: None,
        }
    }
    /// This type with quantization parameters `q`.
    pub fn with_quant(self, q: Option<crate::quant::QParams>) -> Self {
        TensorType { quant: q, ..self }
    }
    /// Same element type and shape (quantization parameters aside).
    pub fn same_layout(&self, other: &TensorType) -> bool {
        self.dtype == other.dtype && self.shape == other.shape
    }
    pub fn f32(shape: impl Into<Shape>) -> Self {
        Self::new(DType::F32, shape)
    }
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn byte_size(&self) -> usize {
        self.numel() * self.dtype.size()
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype)?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")?;
        if let Some(q) = &self.quant {
            write!(f, "(s={},z={})", q.scale, q.zero_point)?;
        }
        if let Some(a) = &self.axis_quant {
            let list = |v: Vec<String>| v.join(",");
            let s = list(a.scales.iter().map(|s| s.to_string()).collect());
            let z = list(a.zero_points.iter().map(|z| z.to_string()).collect());
            let bits = match a.bits {
                8 => String::new(),
                b => format!(",bits={b}"),
            };
            write!(f, "(axis={}{bits},s=[{s}],z=[{z}])", a.axis)?;
        }
        Ok(())
    }
}
