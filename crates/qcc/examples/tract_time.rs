//! Times tract-onnx, the benchmark's independent float runtime, on one model:
//! `tract_time MODEL RUNS` loads the model (static input shape as declared),
//! optimizes it, runs it 3 times to warm up, then RUNS times on one thread,
//! and prints each run's wall time in nanoseconds (like bench/harness.c).

use std::time::Instant;
use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(model) = args.get(1) else {
        eprintln!("usage: tract_time MODEL [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let plan = tract_onnx::onnx()
        .model_for_path(model)?
        .into_optimized()?
        .into_runnable()?;
    let shape: Vec<usize> = plan
        .model()
        .input_fact(0)?
        .shape
        .as_concrete()
        .ok_or_else(|| anyhow::anyhow!("the model's input shape is not static"))?
        .to_vec();
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let x: Tensor = tract_ndarray::ArrayD::from_shape_vec(shape, data)?.into();
    for _ in 0..3 {
        plan.run(tvec!(x.clone().into_tvalue()))?;
    }
    for _ in 0..runs {
        let t = Instant::now();
        plan.run(tvec!(x.clone().into_tvalue()))?;
        println!("{}", t.elapsed().as_nanos());
    }
    Ok(())
}
