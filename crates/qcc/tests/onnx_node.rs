//! ONNX backend node-test conformance: every case of
//! `testdata/onnx-node-tests.txt` (from `.cache/onnx-node/`, or
//! `.cache/onnx-node-const/` for `const/NAME`, both made by `scripts/setup.sh`)
//! is compiled with `qcc`, linked with the C harness, run on its stored inputs
//! and compared with its stored outputs.
//!
//! Prints `onnx node tests: N passed, M failed, K xfail` and every failure. The
//! test fails if a case not marked `xfail` fails, or a case marked `xfail`
//! passes (so the manifest stays honest).
//!
//! Environment:
//! - `QCC_NODE_FILTER=SUBSTRING` runs only the cases whose name contains it;
//! - `QCC_TEST_THREADS=N` cases at a time (default 2);
//! - `QCC_BLESS=1` rewrites the manifest's xfail marks from this run's results
//!   (new failures get `xfail: <error>`, unexpected passes lose their mark);
//! - `QCC_KEEP_TEMP=1` keeps every case's work folder.

mod common;

use common::Tolerance;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// One case line of the manifest.
#[derive(Clone, Debug)]
struct Case {
    name: String,
    tol: Tolerance,
    xfail: Option<String>,
    line: usize,
}

enum Outcome {
    Passed(f64),
    Failed(String),
}

fn manifest_path() -> PathBuf {
    common::repo_root().join("testdata/onnx-node-tests.txt")
}

fn parse_manifest(text: &str) -> Result<Vec<Case>, String> {
    let mut cases = vec![];
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (head, xfail) = match line.split_once("xfail:") {
            Some((h, reason)) => (h, Some(reason.trim().to_string())),
            None => (line, None),
        };
        let mut toks = head.split_whitespace();
        let name = toks.next().unwrap_or_default().to_string();
        let mut tol = Tolerance {
            atol: f64::NAN,
            rtol: f64::NAN,
        };
        for tok in toks {
            let known = common::parse_tolerance_token(tok, &mut tol)
                .map_err(|e| format!("onnx-node-tests.txt:{}: {e}", n + 1))?;
            if !known {
                return Err(format!("onnx-node-tests.txt:{}: unexpected '{tok}'", n + 1));
            }
        }
        if tol.atol.is_nan() || tol.rtol.is_nan() {
            return Err(format!(
                "onnx-node-tests.txt:{}: {name}: needs atol= and rtol=",
                n + 1
            ));
        }
        if xfail.as_deref() == Some("") {
            return Err(format!(
                "onnx-node-tests.txt:{}: {name}: xfail needs a reason",
                n + 1
            ));
        }
        cases.push(Case {
            name,
            tol,
            xfail,
            line: n,
        });
    }
    Ok(cases)
}

/// The case folder: `.cache/onnx-node/NAME` or `.cache/onnx-node-const/NAME`.
fn case_dir(cache: &Path, name: &str) -> PathBuf {
    match name.strip_prefix("const/") {
        Some(n) => cache.join("onnx-node-const").join(n),
        None => cache.join("onnx-node").join(name),
    }
}

fn run_one(cache: &Path, case: &Case) -> Outcome {
    let result = (|| -> Result<f64, String> {
        let dir = case_dir(cache, &case.name);
        if !dir.join("model.onnx").is_file() {
            return Err(format!(
                "{} not found (run scripts/setup.sh)",
                dir.display()
            ));
        }
        let data = common::data_set_dirs(&dir)?
            .iter()
            .map(|d| common::load_data_set(d))
            .collect::<Result<Vec<_>, _>>()?;
        let compiled = common::compile_and_link(&case.name, &dir.join("model.onnx"), &[])?;
        let mut max_err = 0.0f64;
        for d in &data {
            let got = compiled.run(d)?;
            let errs = common::compare_outputs(&got, &d.outputs, case.tol, "expected")?;
            max_err = errs.iter().fold(max_err, |m, (_, e)| m.max(*e));
        }
        Ok(max_err)
    })();
    match result {
        Ok(e) => Outcome::Passed(e),
        Err(e) => Outcome::Failed(e),
    }
}

/// Runs the cases on `threads` worker threads; results in manifest order.
fn run_all(cache: &Path, cases: &[Case], threads: usize) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new((0..cases.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let outcome = run_one(cache, case);
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(outcome);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::Failed("worker thread died".into())))
        .collect()
}

/// The first line of an error, shortened, as an xfail reason.
fn short_reason(err: &str) -> String {
    let mut first = err.lines().next().unwrap_or("").trim();
    for prefix in ["qcc failed (exit status: 1): ", "qcc: error: "] {
        first = first.strip_prefix(prefix).unwrap_or(first);
    }
    if let Some((_, rest)) = first.rsplit_once("model.onnx: ") {
        first = rest;
    }
    let mut s: String = first.chars().take(160).collect();
    if s.len() < first.len() {
        s.push('…');
    }
    s.replace("xfail:", "xfail")
}

/// Rewrites the manifest's lines whose status changed; keeps everything else.
fn bless(text: &str, changes: &HashMap<usize, Option<String>>) -> String {
    let mut out = String::new();
    for (n, line) in text.lines().enumerate() {
        match changes.get(&n) {
            Some(new_xfail) => {
                let head = line.split("xfail:").next().unwrap_or(line).trim_end();
                out.push_str(head);
                if let Some(r) = new_xfail {
                    out.push_str("  xfail: ");
                    out.push_str(r);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[test]
fn onnx_node_tests() {
    let root = common::repo_root();
    let cache = root.join(".cache");
    assert!(
        cache.join("onnx-node/.complete").is_file()
            && cache.join("onnx-node-const/.complete").is_file(),
        "the ONNX node tests are not in {}: run scripts/setup.sh",
        cache.display()
    );
    let path = manifest_path();
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let all = parse_manifest(&text).unwrap_or_else(|e| panic!("{e}"));
    let filter = std::env::var("QCC_NODE_FILTER").unwrap_or_default();
    let cases: Vec<Case> = all
        .into_iter()
        .filter(|c| c.name.contains(&filter))
        .collect();
    let threads = std::env::var("QCC_TEST_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);

    let outcomes = run_all(&cache, &cases, threads);

    let (mut passed, mut xfailed) = (0, 0);
    let mut failures = vec![];
    let mut changes: HashMap<usize, Option<String>> = HashMap::new();
    for (case, outcome) in cases.iter().zip(&outcomes) {
        match (outcome, &case.xfail) {
            (Outcome::Passed(e), None) => {
                passed += 1;
                println!("ok    {} (max abs err {e:.2e})", case.name);
            }
            (Outcome::Failed(_), Some(_)) => xfailed += 1,
            (Outcome::Passed(_), Some(reason)) => {
                failures.push(format!(
                    "{}: passed but is marked xfail ({reason}); remove the mark",
                    case.name
                ));
                changes.insert(case.line, None);
            }
            (Outcome::Failed(err), None) => {
                failures.push(format!("{}: {err}", case.name));
                changes.insert(case.line, Some(short_reason(err)));
            }
        }
    }
    for f in &failures {
        println!("FAIL  {f}");
    }
    println!(
        "onnx node tests: {passed} passed, {} failed, {xfailed} xfail",
        failures.len()
    );

    if std::env::var_os("QCC_BLESS").is_some_and(|v| v == "1") {
        if !changes.is_empty() {
            fs::write(&path, bless(&text, &changes))
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            println!(
                "QCC_BLESS: updated {} lines of {}",
                changes.len(),
                path.display()
            );
        }
        return;
    }
    let mut names: Vec<&str> = failures
        .iter()
        .map(|f| f.split(':').next().unwrap_or(f))
        .take(10)
        .collect();
    if failures.len() > names.len() {
        names.push("…");
    }
    assert!(
        failures.is_empty(),
        "onnx node tests: {} failed: {} (see the FAIL lines above; \
         QCC_BLESS=1 updates the xfail marks)",
        failures.len(),
        names.join(", ")
    );
}

#[test]
fn manifest_parses_and_blesses() {
    let text = "# c\n\ntest_a  atol=0 rtol=0\ntest_b  atol=1e-5 rtol=1e-4  xfail: why\n";
    let cases = parse_manifest(text).unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[1].xfail.as_deref(), Some("why"));
    assert_eq!(cases[1].tol.rtol, 1e-4);
    let mut ch = HashMap::new();
    ch.insert(cases[0].line, Some("new".to_string()));
    ch.insert(cases[1].line, None);
    assert_eq!(
        short_reason("qcc failed (exit status: 1): qcc: error: /a/model.onnx: opset 25\nmore"),
        "opset 25"
    );
    assert_eq!(
        bless(text, &ch),
        "# c\n\ntest_a  atol=0 rtol=0  xfail: new\ntest_b  atol=1e-5 rtol=1e-4\n"
    );
    assert!(parse_manifest("test_c atol=0\n").is_err());
    assert!(parse_manifest("test_c atol=0 rtol=0 bogus\n").is_err());
    assert!(parse_manifest("test_c atol=0 rtol=0 xfail:\n").is_err());
}

#[test]
fn manifest_cases_exist() {
    let cache = common::repo_root().join(".cache");
    if !cache.join("onnx-node/.complete").is_file() {
        return; // onnx_node_tests reports the missing cache
    }
    let text = fs::read_to_string(manifest_path()).unwrap();
    let missing: Vec<String> = parse_manifest(&text)
        .unwrap()
        .into_iter()
        .filter(|c| !case_dir(&cache, &c.name).join("model.onnx").is_file())
        .map(|c| c.name)
        .collect();
    assert!(
        missing.is_empty(),
        "manifest cases not in .cache: {missing:?}"
    );
}
