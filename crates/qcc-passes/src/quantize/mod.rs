//! Building blocks of the quantization passes (`fuse-modules`, `calibrate`,
//! `insert-qdq`, `cancel-qdq`): the number formats, calibration statistics,
//! lookup tables and epilogue algebra. The arithmetic itself is defined in
//! `qcc_ir::quant`; nothing here evaluates integer kernels.

pub mod epilogue;
pub mod gptq;
pub(crate) mod kernels;
pub mod lut;
pub mod moments;
pub mod norm;
pub mod params;
pub mod ranges;
pub mod stats;
pub mod weights;
