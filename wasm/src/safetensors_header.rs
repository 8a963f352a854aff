//! Safetensors header parsing on a prefix of the file, with Hugging Face's own
//! `safetensors` crate doing the JSON schema and offset validation (contiguous,
//! non-overlapping, sizes matching shapes, no overflow). What this adds is the
//! check against the real file size, which the crate only does when handed
//! the whole file, and a `NeedMore` answer so the file is read in pieces.

use crate::error::{Error, Result};
use safetensors::tensor::{Dtype, Metadata};

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
    let meta: Metadata = serde_json::from_str(json)
        .map_err(|e| Error::type_error(format!("invalid safetensors header: {}", e)))?;
    let data_len = meta.data_len() as u64;
    if data_offset.checked_add(data_len).map_or(true, |end| end > file_size) {
        return Err(Error::range_error(format!(
            "safetensors tensor data ends past the file (data needs {} bytes after the {} byte header, the file has {})",
            data_len, data_offset, file_size
        )));
    }
    let infos = meta.tensors();
    let mut tensors: Vec<TensorInfo> = meta
        .offset_keys()
        .into_iter()
        .map(|name| {
            let info = infos[&name];
            TensorInfo {
                dtype: dtype_name(info.dtype),
                shape: info.shape.iter().map(|&d| d as u64).collect(),
                begin: info.data_offsets.0 as u64,
                end: info.data_offsets.1 as u64,
                name,
            }
        })
        .collect();
    tensors.sort_by_key(|t| t.begin);
    let mut metadata: Vec<(String, String)> =
        meta.metadata().as_ref().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
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
    fn rejects_bad_offsets() {
        let f = file(r#"{"a":{"dtype":"F16","shape":[2,3],"data_offsets":[0,10]}}"#, 12);
        assert!(parse(&f, f.len() as u64).is_err());
    }
}
