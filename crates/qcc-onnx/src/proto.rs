//! The prost types generated from `proto/onnx.proto` (package `onnx`).
//!
//! Public so tools and tests can write ONNX files; the rest of qcc only sees
//! the IR the importer builds from them.

#![allow(missing_docs, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
