//! Safetensors header parsing on a prefix of the file. The JSON is parsed by
//! `serde_json` and checked with the rules of Hugging Face's own
//! `safetensors` crate (contiguous offsets from 0, no overlap, byte sizes
//! matching shapes and dtypes, no overflow), with dtype names and sizes taken
//! from that crate. The sizes are computed in `u64`: the crate's `Metadata`
//! uses `usize`, 32 bits in Wasm, so it overflows on any tensor of 512 MiB or
//! more (its size is computed in bits) and rejects offsets past 4 GiB, which
//! real checkpoints have. What this adds is the check against the real file
//! size, which the crate only does when handed the whole file, and a
//! `NeedMore` answer so the file is read in pieces.

use crate::error::{Error, Result};
use safetensors::tensor::Dtype;
use serde_json::Value;

/// The crate's own cap on the JSON header.
const MAX_HEADER_SIZE: u64 = 100_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// `F32`, `F16`, `BF16`, ... as safetensors names them.
    pub dtype: String,
    /// Row-major, outermost first.
    pub shape: Vec<u64>,
    /// Byte offsets into the data section (after the header).
    pub begin: u64,
    pub end: u64,
    /// Bits per element of the dtype.
    pub bits: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Where the data section starts: 8 + header length.
    pub data_offset: u64,
    pub tensors: Vec<TensorInfo>,
    /// The `__metadata__` string map, in key order.
    pub metadata: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Header(Header),
    NeedMore(u64),
}

fn dtype_name(d: Dtype) -> String {
    format!("{:?}", d)
}

fn invalid(message: impl core::fmt::Display) -> Error {
    Error::type_error(format!("invalid safetensors header: {}", message))
}

/// A JSON number that is a non-negative integer, as `u64`.
fn json_u64(v: &Value, what: &dyn Fn() -> String) -> Result<u64> {
    v.as_u64().ok_or_else(|| invalid(format!("{} must be a non-negative integer below 2^64, got {}", what(), v)))
}

/// One tensor entry: `{"dtype": ..., "shape": [...], "data_offsets": [begin, end]}`
/// (other fields are ignored, as the safetensors crate ignores them).
fn tensor_info(name: &str, v: &Value) -> Result<TensorInfo> {
    let o = v
        .as_object()
        .ok_or_else(|| invalid(format!("tensor `{}` must be an object, got {}", name, v)))?;
    let field = |k: &str| o.get(k).ok_or_else(|| invalid(format!("tensor `{}` has no field `{}`", name, k)));
    let dtype_value = field("dtype")?;
    if !dtype_value.is_string() {
        return Err(invalid(format!("the dtype of tensor `{}` must be a string, got {}", name, dtype_value)));
    }
    let dtype: Dtype = serde_json::from_value(dtype_value.clone())
        .map_err(|e| invalid(format!("tensor `{}`: {}", name, e)))?;
    let shape = field("shape")?
        .as_array()
        .ok_or_else(|| invalid(format!("the shape of tensor `{}` must be an array", name)))?
        .iter()
        .enumerate()
        .map(|(i, d)| json_u64(d, &|| format!("dimension {} of tensor `{}`", i, name)))
        .collect::<Result<Vec<u64>>>()?;
    let offsets = match field("data_offsets")?.as_array() {
        Some(a) if a.len() == 2 => a,
        _ => return Err(invalid(format!("the data_offsets of tensor `{}` must be an array of two integers", name))),
    };
    let begin = json_u64(&offsets[0], &|| format!("the begin offset of tensor `{}`", name))?;
    let end = json_u64(&offsets[1], &|| format!("the end offset of tensor `{}`", name))?;
    Ok(TensorInfo { name: name.to_owned(), dtype: dtype_name(dtype), shape, begin, end, bits: dtype.bitsize() as u64 })
}

pub fn parse(buf: &[u8], file_size: u64) -> Result<Parsed> {
    if file_size < 8 {
        return Err(Error::range_error(format!(
            "a safetensors file starts with an 8-byte header length, but the file has {} bytes",
            file_size
        )));
    }
    if buf.len() < 8 {
        return Ok(Parsed::NeedMore(8));
    }
    let n = u64::from_le_bytes(buf[0..8].try_into().unwrap());
    if n > MAX_HEADER_SIZE {
        return Err(Error::range_error(format!(
            "safetensors header length {} is larger than the {} byte limit",
            n, MAX_HEADER_SIZE
        )));
    }
    let data_offset = 8 + n;
    if data_offset > file_size {
        return Err(Error::range_error(format!(
            "safetensors header of {} bytes ends past the file ({} bytes)",
            n, file_size
        )));
    }
    if (buf.len() as u64) < data_offset {
        return Ok(Parsed::NeedMore(data_offset));
    }
    let json = core::str::from_utf8(&buf[8..data_offset as usize])
        .map_err(|e| Error::type_error(format!("safetensors header is not valid UTF-8: {}", e)))?;
    let root: Value = serde_json::from_str(json).map_err(invalid)?;
    let entries = root.as_object().ok_or_else(|| invalid(format!("the header must be a JSON object, got {}", root)))?;

    let mut metadata: Vec<(String, String)> = Vec::new();
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(entries.len());
    for (name, v) in entries {
        if name == "__metadata__" {
            match v {
                Value::Null => {}
                Value::Object(m) => {
                    for (k, v) in m {
                        let s = v.as_str().ok_or_else(|| {
                            invalid(format!("__metadata__ values must be strings, but `{}` is {}", k, v))
                        })?;
                        metadata.push((k.clone(), s.to_owned()));
                    }
                }
                _ => return Err(invalid(format!("__metadata__ must be an object of strings, got {}", v))),
            }
            continue;
        }
        tensors.push(tensor_info(name, v)?);
    }

    // The safetensors crate's rules: in offset order, each tensor starts
    // where the previous one ends (the first at 0) and takes exactly the
    // bytes its shape and dtype need.
    tensors.sort_by_key(|t| (t.begin, t.end));
    let mut start = 0u64;
    for t in &tensors {
        if t.begin != start || t.end < t.begin {
            return Err(invalid(format!(
                "invalid offset for tensor `{}` (data_offsets [{}, {}], expected it to begin at {})",
                t.name, t.begin, t.end, start
            )));
        }
        start = t.end;
        let bits = t
            .shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(t.bits))
            .ok_or_else(|| {
                invalid(format!(
                    "overflow computing buffer size from shape and/or element type of tensor `{}` ({} {:?})",
                    t.name, t.dtype, t.shape
                ))
            })?;
        if bits % 8 != 0 {
            return Err(invalid(format!(
                "tensor `{}` of {} {:?} does not end on a byte boundary",
                t.name, t.dtype, t.shape
            )));
        }
        if t.end - t.begin != bits / 8 {
            return Err(invalid(format!(
                "invalid shape, data type, or offset for tensor `{}`: {} {:?} takes {} bytes, its data_offsets [{}, {}] span {}",
                t.name,
                t.dtype,
                t.shape,
                bits / 8,
                t.begin,
                t.end,
                t.end - t.begin
            )));
        }
    }
    let data_len = start;
    if data_offset.checked_add(data_len).map_or(true, |end| end > file_size) {
        return Err(Error::range_error(format!(
            "safetensors tensor data ends past the file (data needs {} bytes after the {} byte header, the file has {})",
            data_len, data_offset, file_size
        )));
    }
    metadata.sort();
    Ok(Parsed::Header(Header { data_offset, tensors, metadata }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(json: &str, data: usize) -> Vec<u8> {
        let mut f = (json.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(json.as_bytes());
        f.extend(std::iter::repeat(0).take(data));
        f
    }

    #[test]
    fn parses_and_checks_file_size() {
        let f = file(r#"{"a":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},"__metadata__":{"format":"pt"}}"#, 12);
        match parse(&f, f.len() as u64).unwrap() {
            Parsed::Header(h) => {
                assert_eq!(h.tensors[0].shape, vec![2, 3]);
                assert_eq!(h.tensors[0].dtype, "F16");
            }
            p => panic!("{:?}", p),
        }
        assert!(parse(&f[..f.len() - 1], f.len() as u64 - 1).is_err());
        assert!(matches!(parse(&f[..10], f.len() as u64).unwrap(), Parsed::NeedMore(_)));
    }

    #[test]
    fn sizes_past_32_bits_are_computed_in_u64() {
        // A 1 GiB bf16 tensor (Llama 3's embeddings) and a tensor past 4 GiB.
        let json = r#"{"emb":{"dtype":"BF16","shape":[128256,4096],"data_offsets":[0,1050673152]},
            "big":{"dtype":"F32","shape":[1250000000],"data_offsets":[1050673152,6050673152]}}"#;
        let f = file(json, 0);
        let size = f.len() as u64 + 6_050_673_152;
        match parse(&f, size).unwrap() {
            Parsed::Header(h) => {
                assert_eq!(h.tensors[0].name, "emb");
                assert_eq!(h.tensors[1].begin, 1_050_673_152);
                assert_eq!(h.tensors[1].end, 6_050_673_152);
            }
            p => panic!("{:?}", p),
        }
        let e = parse(&f, size - 1).unwrap_err();
        assert!(e.message.contains("ends past the file"), "{}", e.message);
    }

    #[test]
    fn follows_the_safetensors_crate_rules() {
        let cases = [
            (r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, "invalid offset for tensor `a`"),
            (r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, "invalid shape, data type, or offset"),
            (r#"{"a":{"dtype":"Q8_0","shape":[1],"data_offsets":[0,4]}}"#, "unknown variant `Q8_0`"),
            (r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#, "byte boundary"),
            (r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#, "overflow"),
            (r#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, "non-negative integer"),
            (r#"{"a":{"dtype":"F32","shape":[1]}}"#, "no field `data_offsets`"),
            (r#"{"__metadata__":{"k":1}}"#, "must be strings"),
            (r#"[]"#, "must be a JSON object"),
        ];
        for (json, want) in cases {
            let f = file(json, 64);
            let e = parse(&f, f.len() as u64).unwrap_err();
            assert!(e.message.contains(want), "{}: {}", json, e.message);
        }
        let f = file(r#"{"a":{"dtype":"F4","shape":[4],"data_offsets":[0,2]},"__metadata__":null}"#, 2);
        assert!(matches!(parse(&f, f.len() as u64).unwrap(), Parsed::Header(_)));
    }

    #[test]
    fn rejects_bad_offsets() {
        let f = file(r#"{"a":{"dtype":"F16","shape":[2,3],"data_offsets":[0,10]}}"#, 12);
        assert!(parse(&f, f.len() as u64).is_err());
    }
}
