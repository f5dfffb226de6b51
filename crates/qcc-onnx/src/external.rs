//! External tensor data (`data_location == EXTERNAL`): read bytes from a
//! file next to the model, refusing any path that leaves the model's folder.

use crate::error::Problem;
use crate::proto::TensorProto;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

/// Reads the `expected` bytes of `t`'s external data from below `base_dir`.
pub(crate) fn read(t: &TensorProto, base_dir: &Path, expected: usize) -> Result<Vec<u8>, Problem> {
    let name = t.name();
    let err = |msg: String| Problem::tensor(name, msg);
    let mut location = None;
    let mut offset: u64 = 0;
    let mut length: Option<u64> = None;
    let mut seen = std::collections::HashSet::new();
    for e in &t.external_data {
        if !seen.insert(e.key()) {
            return Err(err(format!(
                "external data entry '{}' is given twice",
                e.key()
            )));
        }
        let num = |what: &str| -> Result<u64, Problem> {
            e.value().trim().parse::<u64>().map_err(|_| {
                err(format!(
                    "external data {what} '{}' is not a non-negative integer",
                    e.value()
                ))
            })
        };
        match e.key() {
            "location" => location = Some(e.value()),
            "offset" => offset = num("offset")?,
            "length" => length = Some(num("length")?),
            _ => {}
        }
    }
    let location = location
        .filter(|l| !l.is_empty())
        .ok_or_else(|| err("external data has no 'location'".into()))?;
    check_relative(location)
        .map_err(|why| err(format!("external data path '{location}' {why}")))?;

    let path = base_dir.join(location);
    let outside = || {
        err(format!(
            "external data path '{location}' resolves outside the model folder"
        ))
    };
    let real_base = base_dir
        .canonicalize()
        .map_err(|e| err(format!("cannot resolve the model folder: {e}")))?;
    let real = path
        .canonicalize()
        .map_err(|e| err(format!("cannot open external data file '{location}': {e}")))?;
    if !real.starts_with(&real_base) {
        return Err(outside());
    }
    let io = |e: std::io::Error| err(format!("cannot read external data file '{location}': {e}"));
    // Only regular files: opening a FIFO would block forever.
    if !std::fs::metadata(&real).map_err(io)?.is_file() {
        return Err(err(format!(
            "external data file '{location}' is not a regular file"
        )));
    }
    let mut file = File::open(&real).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let length = length.unwrap_or_else(|| size.saturating_sub(offset));
    let end = offset.checked_add(length).filter(|&end| end <= size);
    if end.is_none() || offset > size {
        return Err(err(format!(
            "external data '{location}' offset {offset} + length {length} exceeds the file size {size}"
        )));
    }
    if length != expected as u64 {
        return Err(err(format!(
            "external data '{location}' has length {length} but the tensor needs {expected} bytes"
        )));
    }
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut buf = vec![0u8; expected];
    file.read_exact(&mut buf).map_err(io)?;
    Ok(buf)
}

/// Refuses absolute paths and `..` components (in either separator style).
fn check_relative(location: &str) -> Result<(), &'static str> {
    let p = Path::new(location);
    if p.is_absolute() || location.starts_with(['/', '\\']) || p.has_root() {
        return Err("is absolute; it must be relative to the model folder");
    }
    if location.len() >= 2 && location.as_bytes()[1] == b':' {
        return Err("has a drive prefix; it must be relative to the model folder");
    }
    let parent = p
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
        || location.split(['/', '\\']).any(|s| s == "..");
    if parent {
        return Err("contains '..'; it must stay inside the model folder");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_relative;

    #[test]
    fn relative_paths() {
        assert!(check_relative("weights.bin").is_ok());
        assert!(check_relative("sub/weights.bin").is_ok());
        assert!(check_relative("a..b").is_ok());
        assert!(check_relative("../w.bin").is_err());
        assert!(check_relative("sub/../../w.bin").is_err());
        assert!(check_relative("sub\\..\\w.bin").is_err());
        assert!(check_relative("/etc/passwd").is_err());
        assert!(check_relative("\\\\server\\share").is_err());
        assert!(check_relative("C:\\w.bin").is_err());
    }
}
