//! Tests of calibration-data loading: every source kind and every bad input,
//! with files written here by npyz, zip and prost.

use super::*;
use npyz::WriterBuilder;
use prost::Message;
use std::io::Write;
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

fn spec(name: &str, shape: &[usize]) -> InputSpec {
    InputSpec {
        name: name.into(),
        ty: TensorType::new(DType::F32, shape.to_vec()),
    }
}

fn npy_bytes<T: npyz::AutoSerialize + Copy>(shape: &[u64], data: &[T], order: Order) -> Vec<u8> {
    let mut out = vec![];
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .order(order)
        .writer(&mut out)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    out
}

fn npz_bytes(arrays: &[(&str, Vec<u8>)], method: CompressionMethod) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(Cursor::new(vec![]));
    for (name, bytes) in arrays {
        z.start_file(
            format!("{name}.npy"),
            SimpleFileOptions::default().compression_method(method),
        )
        .unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap().into_inner()
}

/// A version-1 `.npy` header holding `text` (padded as numpy pads it), no data.
fn npy_with_header(text: &str) -> Vec<u8> {
    let mut header = text.to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = NPY_MAGIC.to_vec();
    bytes.extend([1, 0]);
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes
}

fn iota(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32).collect()
}

/// Writes `bytes` to `dir/name` and loads it.
fn load_bytes(dir: &Path, name: &str, bytes: &[u8], inputs: &[InputSpec]) -> Result<Samples> {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    load(&p, inputs)
}

/// Loads, expects an error, and checks it is one line naming `file` and every needle.
fn load_err(dir: &Path, name: &str, bytes: &[u8], inputs: &[InputSpec], needles: &[&str]) {
    let e = load_bytes(dir, name, bytes, inputs)
        .expect_err("loading should fail")
        .to_string();
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    assert!(e.contains(name), "names the file: {e}");
    for n in needles {
        assert!(e.contains(n), "mentions '{n}': {e}");
    }
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.as_f32().unwrap().to_vec()
}

#[test]
fn npy_stack_replaces_batch_one() {
    let d = tempfile::tempdir().unwrap();
    let bytes = npy_bytes(&[4, 3, 2], &iota(24), Order::C);
    let s = load_bytes(d.path(), "c.npy", &bytes, &[spec("x", &[1, 3, 2])]).unwrap();
    assert_eq!(s.len(), 4);
    assert!(s.iter().all(|row| row.len() == 1));
    assert_eq!(s[1][0].shape(), &[1, 3, 2]);
    assert_eq!(f32s(&s[1][0]), iota(12)[6..12].to_vec());
}

#[test]
fn npy_sample_axis_prepended() {
    let d = tempfile::tempdir().unwrap();
    let bytes = npy_bytes(&[3, 1, 2, 2], &iota(12), Order::C);
    let s = load_bytes(d.path(), "c.npy", &bytes, &[spec("x", &[1, 2, 2])]).unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(f32s(&s[2][0]), vec![8.0, 9.0, 10.0, 11.0]);
}

#[test]
fn npy_rows_grouped_into_batches() {
    let d = tempfile::tempdir().unwrap();
    let x = [spec("x", &[2, 3])];
    let s = load_bytes(
        d.path(),
        "c.npy",
        &npy_bytes(&[6, 3], &iota(18), Order::C),
        &x,
    )
    .unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(s[1][0].shape(), &[2, 3]);
    assert_eq!(f32s(&s[1][0]), iota(12)[6..12].to_vec());
    load_err(
        d.path(),
        "odd.npy",
        &npy_bytes(&[5, 3], &iota(15), Order::C),
        &x,
        &["5 rows", "batch 2"],
    );
}

#[test]
fn npy_float64_is_rounded_to_float32() {
    let d = tempfile::tempdir().unwrap();
    let v: Vec<f64> = vec![0.1, -2.5, 1e-3, 7.0];
    let s = load_bytes(
        d.path(),
        "c.npy",
        &npy_bytes(&[2, 2], &v, Order::C),
        &[spec("x", &[1, 2])],
    )
    .unwrap();
    assert_eq!(f32s(&s[0][0]), vec![0.1f32, -2.5]);
    assert_eq!(f32s(&s[1][0]), vec![1e-3f32, 7.0]);
    load_err(
        d.path(),
        "big.npy",
        &npy_bytes(&[2, 1], &[1.0f64, 1e39], Order::C),
        &[spec("x", &[1, 1])],
        &["[1, 0]", "out of float32 range"],
    );
}

#[test]
fn npy_fortran_order_is_reordered() {
    let d = tempfile::tempdir().unwrap();
    // Logical array [[0, 1, 2], [3, 4, 5]] stored column-major: 0 3 1 4 2 5.
    let stored = [0.0f32, 3.0, 1.0, 4.0, 2.0, 5.0];
    let s = load_bytes(
        d.path(),
        "f.npy",
        &npy_bytes(&[2, 3], &stored, Order::Fortran),
        &[spec("x", &[1, 3])],
    )
    .unwrap();
    assert_eq!(f32s(&s[0][0]), vec![0.0, 1.0, 2.0]);
    assert_eq!(f32s(&s[1][0]), vec![3.0, 4.0, 5.0]);
}

#[test]
fn npy_int64_input() {
    let d = tempfile::tempdir().unwrap();
    let x = [InputSpec {
        name: "ids".into(),
        ty: TensorType::new(DType::I64, vec![1, 2]),
    }];
    let s = load_bytes(
        d.path(),
        "i.npy",
        &npy_bytes(&[2, 2], &[1i32, 2, 3, 4], Order::C),
        &x,
    )
    .unwrap();
    assert_eq!(s[1][0].as_i64().unwrap(), &[3, 4]);
    load_err(
        d.path(),
        "f.npy",
        &npy_bytes(&[2, 2], &[1.0f32; 4], Order::C),
        &x,
        &["<f4", "'ids'", "int64"],
    );
}

#[test]
fn npy_wrong_dtype() {
    let d = tempfile::tempdir().unwrap();
    let x = [spec("x", &[1, 2])];
    load_err(
        d.path(),
        "i.npy",
        &npy_bytes(&[2, 2], &[1i32; 4], Order::C),
        &x,
        &["<i4", "'x'", "float32"],
    );
    load_err(
        d.path(),
        "u.npy",
        &npy_bytes(&[2, 2], &[1u8; 4], Order::C),
        &x,
        &["|u1", "not supported"],
    );
}

#[test]
fn npy_wrong_shape() {
    let d = tempfile::tempdir().unwrap();
    load_err(
        d.path(),
        "s.npy",
        &npy_bytes(&[4, 3, 3], &iota(36), Order::C),
        &[spec("x", &[1, 3, 2])],
        &["[4, 3, 3]", "'x'", "[1, 3, 2]"],
    );
}

#[test]
fn npy_zero_samples() {
    let d = tempfile::tempdir().unwrap();
    load_err(
        d.path(),
        "z.npy",
        &npy_bytes::<f32>(&[0, 1, 2], &[], Order::C),
        &[spec("x", &[1, 2])],
        &["zero samples"],
    );
}

#[test]
fn npy_nan_and_inf_are_located() {
    let d = tempfile::tempdir().unwrap();
    let x = [spec("x", &[1, 2, 2])];
    let mut v = iota(12);
    v[9] = f32::NAN;
    v[10] = f32::INFINITY;
    load_err(
        d.path(),
        "nan.npy",
        &npy_bytes(&[3, 2, 2], &v, Order::C),
        &x,
        &["element [2, 0, 1] is NaN"],
    );
    let mut v = iota(12);
    v[5] = f32::NEG_INFINITY;
    load_err(
        d.path(),
        "inf.npy",
        &npy_bytes(&[3, 2, 2], &v, Order::C),
        &x,
        &["element [1, 0, 1] is -inf"],
    );
    let w: Vec<f64> = vec![1.0, f64::INFINITY];
    load_err(
        d.path(),
        "inf64.npy",
        &npy_bytes(&[2, 1], &w, Order::C),
        &[spec("x", &[1, 1])],
        &["element [1, 0] is inf"],
    );
}

#[test]
fn npy_needs_a_single_input_model() {
    let d = tempfile::tempdir().unwrap();
    load_err(
        d.path(),
        "c.npy",
        &npy_bytes(&[2, 2], &iota(4), Order::C),
        &[spec("a", &[1, 2]), spec("b", &[1, 2])],
        &["2 inputs", "a, b", ".npz"],
    );
}

#[test]
fn bad_files() {
    let d = tempfile::tempdir().unwrap();
    let x = [spec("x", &[1, 2])];
    let e = load(&d.path().join("missing.npy"), &x)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing.npy") && e.contains("cannot read"),
        "{e}"
    );
    load_err(d.path(), "junk.npy", b"hello world", &x, &["not a .npy"]);
    load_err(d.path(), "empty.npy", b"", &x, &["not a .npy"]);
    let good = npy_bytes(&[4, 2], &iota(8), Order::C);
    load_err(
        d.path(),
        "short.npy",
        &good[..good.len() - 5],
        &x,
        &["truncated"],
    );
    load_err(d.path(), "hdr.npy", &good[..9], &x, &["truncated"]);
}

#[test]
fn npy_huge_shape_is_an_error_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    let bytes = npy_with_header(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4294967296, 4294967296, 16), }",
    );
    load_err(
        d.path(),
        "huge.npy",
        &bytes,
        &[spec("x", &[1, 2])],
        &["too large"],
    );
}

#[test]
fn npz_by_input_name() {
    let d = tempfile::tempdir().unwrap();
    let inputs = [spec("a", &[1, 2]), spec("b", &[3])];
    for method in [CompressionMethod::Stored, CompressionMethod::Deflated] {
        let npz = npz_bytes(
            &[
                ("b", npy_bytes(&[2, 3], &iota(6), Order::C)),
                ("a", npy_bytes(&[2, 2], &[9.0f32, 8.0, 7.0, 6.0], Order::C)),
            ],
            method,
        );
        let s = load_bytes(d.path(), "c.npz", &npz, &inputs).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(f32s(&s[0][0]), vec![9.0, 8.0]);
        assert_eq!(f32s(&s[0][1]), vec![0.0, 1.0, 2.0]);
        assert_eq!(f32s(&s[1][0]), vec![7.0, 6.0]);
        assert_eq!(f32s(&s[1][1]), vec![3.0, 4.0, 5.0]);
    }
}

#[test]
fn npz_positional_names() {
    let d = tempfile::tempdir().unwrap();
    let npz = npz_bytes(
        &[
            ("arr_1", npy_bytes(&[1, 1], &[2.0f32], Order::C)),
            ("arr_0", npy_bytes(&[1, 1], &[1.0f32], Order::C)),
        ],
        CompressionMethod::Stored,
    );
    let s = load_bytes(d.path(), "p.npz", &npz, &[spec("a", &[1]), spec("b", &[1])]).unwrap();
    assert_eq!(f32s(&s[0][0]), vec![1.0]);
    assert_eq!(f32s(&s[0][1]), vec![2.0]);
}

#[test]
fn npz_bad_names_and_counts() {
    let d = tempfile::tempdir().unwrap();
    let inputs = [spec("a", &[1]), spec("b", &[1])];
    let arr = |n: u64| npy_bytes(&[n, 1], &iota(n as usize), Order::C);
    let stored = CompressionMethod::Stored;
    load_err(
        d.path(),
        "unknown.npz",
        &npz_bytes(&[("a", arr(2)), ("b", arr(2)), ("c", arr(2))], stored),
        &inputs,
        &["array 'c'", "not an input", "a, b"],
    );
    load_err(
        d.path(),
        "missing.npz",
        &npz_bytes(&[("a", arr(2))], stored),
        &inputs,
        &["no array for input 'b'"],
    );
    load_err(
        d.path(),
        "counts.npz",
        &npz_bytes(&[("a", arr(2)), ("b", arr(3))], stored),
        &inputs,
        &["array 'b' has 3 samples", "'a' has 2"],
    );
    load_err(
        d.path(),
        "zero.npz",
        &npz_bytes(&[("a", arr(0)), ("b", arr(0))], stored),
        &inputs,
        &["array 'a'", "zero samples"],
    );
    let mut v = iota(2);
    v[1] = f32::NAN;
    load_err(
        d.path(),
        "nan.npz",
        &npz_bytes(
            &[("a", arr(2)), ("b", npy_bytes(&[2, 1], &v, Order::C))],
            stored,
        ),
        &inputs,
        &["array 'b'", "element [1, 0] is NaN"],
    );
    load_err(
        d.path(),
        "int.npz",
        &npz_bytes(
            &[
                ("a", arr(2)),
                ("b", npy_bytes(&[2, 1], &[1i64, 2], Order::C)),
            ],
            stored,
        ),
        &inputs,
        &["array 'b'", "<i8", "float32"],
    );
    load_err(
        d.path(),
        "empty.npz",
        &npz_bytes(&[], stored),
        &inputs,
        &["no .npy arrays"],
    );
    let mut broken = npz_bytes(&[("a", arr(2))], stored);
    broken.truncate(broken.len() / 2);
    load_err(
        d.path(),
        "broken.npz",
        &broken,
        &inputs,
        &["not a valid .npz"],
    );
}

#[test]
fn npz_duplicate_member_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let inputs = [spec("a", &[1])];
    let arr = |n: u64| npy_bytes(&[n, 1], &iota(n as usize), Order::C);
    // Two members, then the second renamed like the first (same length), in
    // its local header and in the central directory: numpy would keep the last.
    let mut z = npz_bytes(&[("a", arr(2)), ("b", arr(3))], CompressionMethod::Stored);
    let mut renamed = 0;
    for i in 0..z.len() - 5 {
        if &z[i..i + 5] == b"b.npy" {
            z[i] = b'a';
            renamed += 1;
        }
    }
    assert_eq!(renamed, 2);
    load_err(
        d.path(),
        "dup.npz",
        &z,
        &inputs,
        &["array 'a' appears twice"],
    );
}

/// A small archive whose member declares (and unpacks to) far more than any
/// input takes is refused from its header, before the data is unpacked.
#[test]
fn npz_member_header_is_checked_before_unpacking() {
    let d = tempfile::tempdir().unwrap();
    let inputs = [spec("a", &[1, 3])];
    // 32 MiB of zeros as a [2097152, 4] array: deflates to a few tens of KiB.
    let n = 1usize << 21;
    let big = npy_bytes(&[n as u64, 4], &vec![0f32; 4 * n], Order::C);
    let z = npz_bytes(&[("a", big)], CompressionMethod::Deflated);
    assert!(
        z.len() < 1 << 20,
        "the archive is small ({} bytes)",
        z.len()
    );
    load_err(
        d.path(),
        "bomb.npz",
        &z,
        &inputs,
        &[
            "array 'a'",
            "[2097152, 4]",
            "does not fit input 'a'",
            "[1, 3]",
        ],
    );
}

#[test]
fn npy_header_that_is_not_a_dict_is_one_line() {
    let d = tempfile::tempdir().unwrap();
    let mut bytes = npy_with_header("[1, 2, 3]");
    bytes.extend([0u8; 16]);
    load_err(
        d.path(),
        "list.npy",
        &bytes,
        &[spec("x", &[1, 2])],
        &["not a valid .npy"],
    );
}

fn write_pb(path: &Path, name: &str, t: &Tensor) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, qcc_onnx::tensor_to_proto(name, t).encode_to_vec()).unwrap();
}

fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor::from_f32(shape.to_vec(), v).unwrap()
}

#[test]
fn folder_of_data_sets() {
    let d = tempfile::tempdir().unwrap();
    let inputs = [spec("a", &[1, 2]), spec("b", &[1])];
    for (k, base) in [(0, 0.0), (1, 10.0), (10, 100.0)] {
        let set = d.path().join(format!("test_data_set_{k}"));
        write_pb(
            &set.join("input_0.pb"),
            "a",
            &t(&[1, 2], vec![base, base + 1.0]),
        );
        write_pb(&set.join("input_1.pb"), "b", &t(&[1], vec![base + 2.0]));
    }
    fs::create_dir(d.path().join("unrelated")).unwrap();
    let s = load(d.path(), &inputs).unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(f32s(&s[1][0]), vec![10.0, 11.0]);
    assert_eq!(f32s(&s[2][1]), vec![102.0]); // numeric order: 0, 1, 10
}

#[test]
fn folder_with_one_set() {
    let d = tempfile::tempdir().unwrap();
    write_pb(&d.path().join("input_0.pb"), "", &t(&[2], vec![1.0, 2.0]));
    let s = load(d.path(), &[spec("x", &[2])]).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(f32s(&s[0][0]), vec![1.0, 2.0]);
}

fn folder_err(dir: &Path, inputs: &[InputSpec], needles: &[&str]) {
    let e = load(dir, inputs).unwrap_err().to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    for n in needles {
        assert!(e.contains(n), "mentions '{n}': {e}");
    }
}

#[test]
fn folder_errors() {
    let inputs = [spec("a", &[1, 2]), spec("b", &[1])];
    let d = tempfile::tempdir().unwrap();
    folder_err(d.path(), &inputs, &["no input_0.pb"]);

    let set = d.path().join("test_data_set_0");
    write_pb(&set.join("input_0.pb"), "a", &t(&[1, 2], vec![0.0, 1.0]));
    folder_err(
        d.path(),
        &inputs,
        &["test_data_set_0", "1 input_*.pb", "2 input"],
    );

    write_pb(&set.join("input_1.pb"), "b", &t(&[2], vec![0.0, 1.0]));
    folder_err(
        d.path(),
        &inputs,
        &["test_data_set_0/input_1.pb", "input 'b'", "f32[1]"],
    );

    write_pb(&set.join("input_1.pb"), "b", &t(&[1], vec![f32::NAN]));
    folder_err(d.path(), &inputs, &["input_1.pb", "element [0] is NaN"]);

    write_pb(&set.join("input_1.pb"), "a", &t(&[1], vec![1.0]));
    folder_err(d.path(), &inputs, &["input_1.pb", "holds input 'a'"]);

    fs::write(set.join("input_1.pb"), b"\xff\xff\xff").unwrap();
    folder_err(d.path(), &inputs, &["input_1.pb"]);
}

#[test]
fn model_without_inputs() {
    let d = tempfile::tempdir().unwrap();
    let e = load(d.path(), &[]).unwrap_err().to_string();
    assert!(e.contains("no inputs"), "{e}");
}

#[test]
fn index_strings() {
    assert_eq!(index_str(0, &[2, 3]), "[0, 0]");
    assert_eq!(index_str(5, &[2, 3]), "[1, 2]");
    assert_eq!(index_str(7, &[2, 2, 2]), "[1, 1, 1]");
    assert_eq!(index_str(0, &[]), "[]");
}

#[test]
fn methods() {
    use CalibrationMethod::*;
    assert_eq!(parse_method("minmax"), Ok(MinMax));
    assert_eq!(parse_method("percentile"), Ok(Percentile(99.99)));
    assert_eq!(parse_method("percentile=99.9"), Ok(Percentile(99.9)));
    assert_eq!(parse_method("percentile=100"), Ok(Percentile(100.0)));
    assert_eq!(parse_method("entropy"), Ok(Entropy));
    assert_eq!(parse_method("mse"), Ok(Mse));
    for bad in [
        "",
        "max",
        "percentile=0",
        "percentile=50",
        "percentile=101",
        "percentile=x",
        "percentile=NaN",
    ] {
        assert!(parse_method(bad).is_err(), "{bad}");
    }
}

#[test]
fn samples_in_memory() {
    let inputs = [spec("x", &[2])];
    assert!(check_samples(&vec![vec![t(&[2], vec![1.0, 2.0])]], &inputs).is_ok());
    let cases: Vec<(Samples, &str)> = vec![
        (vec![], "zero samples"),
        (vec![vec![]], "0 tensors"),
        (vec![vec![t(&[3], vec![1.0; 3])]], "does not fit"),
        (
            vec![vec![t(&[2], vec![1.0, f32::NAN])]],
            "element [1] is NaN",
        ),
    ];
    for (s, needle) in cases {
        let e = check_samples(&s, &inputs).unwrap_err().to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    }
}
