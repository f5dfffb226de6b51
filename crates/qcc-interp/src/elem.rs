//! Element-type plumbing: [`Elem`] ties a Rust scalar type to its
//! [`TensorData`] variant, and [`for_dtype!`] runs code generic over `T: Elem`
//! for a [`DType`] known only at run time.

use qcc_ir::{DType, Tensor, TensorData};

/// A scalar type that a [`Tensor`] can hold.
pub trait Elem: Copy + PartialEq + 'static {
    const DTYPE: DType;
    /// The elements, if `d` holds this type.
    fn view(d: &TensorData) -> Option<&[Self]>;
    /// Wraps elements of this type into tensor storage.
    fn wrap(v: Vec<Self>) -> TensorData;
    /// Conversion from a float as C does: toward zero, saturating (NaN gives 0); `x != 0` for bool.
    fn from_f32(x: f32) -> Self;
    /// Conversion from an integer as C does: two's-complement wrap; `x != 0` for bool.
    fn from_i64(x: i64) -> Self;
}

macro_rules! impl_elem {
    ($t:ty, $variant:ident) => {
        impl Elem for $t {
            const DTYPE: DType = DType::$variant;
            fn view(d: &TensorData) -> Option<&[Self]> {
                match d {
                    TensorData::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn wrap(v: Vec<Self>) -> TensorData {
                TensorData::$variant(v)
            }
            fn from_f32(x: f32) -> Self {
                x as $t
            }
            fn from_i64(x: i64) -> Self {
                x as $t
            }
        }
    };
}

impl_elem!(f32, F32);
impl_elem!(i64, I64);
impl_elem!(i32, I32);
impl_elem!(i8, I8);
impl_elem!(u8, U8);

impl Elem for bool {
    const DTYPE: DType = DType::Bool;
    fn view(d: &TensorData) -> Option<&[Self]> {
        match d {
            TensorData::Bool(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<Self>) -> TensorData {
        TensorData::Bool(v)
    }
    fn from_f32(x: f32) -> Self {
        x != 0.0
    }
    fn from_i64(x: i64) -> Self {
        x != 0
    }
}

/// Evaluates `$body` with `$T` bound to the Rust type of the run-time dtype `$dt`.
macro_rules! for_dtype {
    ($dt:expr, $T:ident => $body:expr) => {
        match $dt {
            qcc_ir::DType::F32 => {
                type $T = f32;
                $body
            }
            qcc_ir::DType::I64 => {
                type $T = i64;
                $body
            }
            qcc_ir::DType::I32 => {
                type $T = i32;
                $body
            }
            qcc_ir::DType::I8 => {
                type $T = i8;
                $body
            }
            qcc_ir::DType::U8 => {
                type $T = u8;
                $body
            }
            qcc_ir::DType::Bool => {
                type $T = bool;
                $body
            }
        }
    };
}
pub(crate) use for_dtype;

/// The elements of `t` as `T`, or an error naming both types.
pub fn elems<'a, T: Elem>(t: &'a Tensor, what: &str) -> Result<&'a [T], String> {
    T::view(t.data()).ok_or_else(|| format!("{what} must be {}, got {}", T::DTYPE, t.ty()))
}

/// The elements of an f32 tensor.
pub fn f32s<'a>(t: &'a Tensor, what: &str) -> Result<&'a [f32], String> {
    elems::<f32>(t, what)
}
