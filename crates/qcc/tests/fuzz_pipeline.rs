//! A mutation fuzzer over the whole front half of the compiler, run for a
//! bounded time on every test run: import, `check`, the verifier, every pass
//! of the default pipeline and the memory plan, on mutants of the models in
//! `testdata/` (the corpus: the shipped models, the bad models and
//! `testdata/fuzz/`). Any panic fails the test and leaves the input that
//! caused it in `target/fuzz-crashes/`, to be added to the corpus once fixed.
//!
//! `QCC_FUZZ_SECONDS` sets the time budget (default 20 s) and `QCC_FUZZ_SEED`
//! (hex) the sequence (default fixed); the run prints its execution count and
//! rate (`cargo test --release --test fuzz_pipeline -- --nocapture`).

use qcc_codegen::plan_memory;
use qcc_onnx::{check_model, load_model, ImportOptions};
use qcc_passes::{PassContext, Pipeline};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn corpus() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    let mut files = vec![];
    let mut dirs = vec![root];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("testdata").flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "onnx") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .filter(|b| !b.is_empty() && b.len() < 1 << 20)
        .collect()
}

/// xorshift64: deterministic, seeded per run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that break careless size and index arithmetic, as varint bytes.
const EDGE_BYTES: &[u8] = &[0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x20];

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut b = corpus[rng.below(corpus.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let i = rng.below(b.len());
        match rng.below(6) {
            0 => b[i] = rng.next() as u8,
            1 => b[i] ^= 1 << rng.below(8),
            2 => b[i] = EDGE_BYTES[rng.below(EDGE_BYTES.len())],
            3 => b.truncate(i.max(1)),
            4 => {
                // Splice a run from another corpus file.
                let o = &corpus[rng.below(corpus.len())];
                let (s, n) = (rng.below(o.len()), 1 + rng.below(64));
                let run = &o[s..(s + n).min(o.len())];
                b.splice(i..i, run.iter().copied());
            }
            _ => {
                // Duplicate a run in place (repeated fields, lengths off).
                let n = 1 + rng.below(32);
                let run: Vec<u8> = b[i..(i + n).min(b.len())].to_vec();
                b.splice(i..i, run);
            }
        }
        if b.is_empty() {
            b.push(0);
        }
    }
    b
}

/// Everything up to code generation, on the model at `path`.
fn front_half(path: &Path) {
    let opts = ImportOptions::default();
    let _ = check_model(path, &opts);
    let Ok(mut g) = load_model(path, &opts) else {
        return;
    };
    qcc_ir::verify(&g).unwrap_or_else(|e| panic!("imported an invalid graph: {e}"));
    let mut cx = PassContext::default();
    if Pipeline::default().run(&mut g, &mut cx, None).is_ok() {
        let _ = plan_memory::plan(&g);
    }
}

#[test]
fn mutants_never_panic() {
    let secs: u64 = std::env::var("QCC_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let corpus = corpus();
    assert!(corpus.len() >= 10, "the corpus has {} models", corpus.len());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    // A fixed seed by default: CI replays a prefix of the same sequence
    // (longer local runs cover it), so an unrelated change never turns it red.
    let seed = std::env::var("QCC_FUZZ_SEED")
        .ok()
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15)
        | 1;
    let mut rng = Rng(seed);
    let (start, budget) = (Instant::now(), Duration::from_secs(secs));
    let mut runs = 0u64;
    // The corpus itself first, then mutants until the budget is spent.
    let mut pending: Vec<Vec<u8>> = corpus.clone();
    while start.elapsed() < budget || !pending.is_empty() {
        let input = pending.pop().unwrap_or_else(|| mutate(&mut rng, &corpus));
        std::fs::write(&path, &input).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| front_half(&path)));
        runs += 1;
        if r.is_err() {
            let crashes = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
            std::fs::create_dir_all(&crashes).unwrap();
            let saved = crashes.join(format!("crash-{seed:x}-{runs}.onnx"));
            std::fs::write(&saved, &input).unwrap();
            panic!(
                "a mutant panicked (seed {seed:#x}); input saved as {}",
                saved.display()
            );
        }
    }
    let t = start.elapsed().as_secs_f64();
    eprintln!(
        "fuzz: {runs} inputs in {t:.1} s ({:.0}/s), seed {seed:#x}, corpus of {}",
        runs as f64 / t,
        corpus.len()
    );
}
