//! GGUF header parsing (versions 2 and 3, little-endian), written for hostile
//! input: every count, length and offset is checked against the file size
//! before anything is allocated, every product is checked for overflow, and
//! nested arrays have a depth limit, so a malformed file gives an error naming
//! the problem instead of a trap, a hang or an unbounded allocation.
//!
//! The parser works on a prefix of the file: when the header runs past the
//! bytes it was given (but not past the file), it answers
//! [`Parsed::NeedMore`] with the byte count it needs, and the caller reads
//! more and calls again. Tensor data is never read here.

use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use std::collections::BTreeSet;

/// GGUF's magic, "GGUF" read as a little-endian u32.
const MAGIC: &[u8; 4] = b"GGUF";
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;
/// How deep arrays may nest (arrays of arrays of ...). GGUF files in the wild
/// use at most 2; the limit only keeps recursion bounded.
const MAX_ARRAY_DEPTH: u32 = 8;
/// Alignment of the data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// The smallest encoding of one element of each value type, in bytes; used
/// to reject counts that could not fit in the rest of the file.
fn min_value_size(value_type: u32) -> u64 {
    match value_type {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4 | 5 | 6 => 4,
        8 => 8,      // string: its u64 length
        9 => 4 + 8,  // array: element type and count
        10 | 11 | 12 => 8,
        _ => 1,
    }
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Array(Array),
}

/// A metadata array: homogeneous, possibly of arrays.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    Str(Vec<String>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Array(Vec<Array>),
}

/// GGUF's name for a value type id.
pub fn value_type_name(t: u32) -> &'static str {
    match t {
        0 => "u8",
        1 => "i8",
        2 => "u16",
        3 => "i16",
        4 => "u32",
        5 => "i32",
        6 => "f32",
        7 => "bool",
        8 => "string",
        9 => "array",
        10 => "u64",
        11 => "i64",
        12 => "f64",
        _ => "unknown",
    }
}

impl Value {
    /// The type as written in inspect output, e.g. `u32` or `array<string>`.
    pub fn type_name(&self) -> String {
        match self {
            Value::U8(_) => "u8".into(),
            Value::I8(_) => "i8".into(),
            Value::U16(_) => "u16".into(),
            Value::I16(_) => "i16".into(),
            Value::U32(_) => "u32".into(),
            Value::I32(_) => "i32".into(),
            Value::F32(_) => "f32".into(),
            Value::Bool(_) => "bool".into(),
            Value::Str(_) => "string".into(),
            Value::U64(_) => "u64".into(),
            Value::I64(_) => "i64".into(),
            Value::F64(_) => "f64".into(),
            Value::Array(a) => format!("array<{}>", a.type_name()),
        }
    }
}

impl Array {
    pub fn type_name(&self) -> String {
        match self {
            Array::U8(_) => "u8".into(),
            Array::I8(_) => "i8".into(),
            Array::U16(_) => "u16".into(),
            Array::I16(_) => "i16".into(),
            Array::U32(_) => "u32".into(),
            Array::I32(_) => "i32".into(),
            Array::F32(_) => "f32".into(),
            Array::Bool(_) => "bool".into(),
            Array::Str(_) => "string".into(),
            Array::U64(_) => "u64".into(),
            Array::I64(_) => "i64".into(),
            Array::F64(_) => "f64".into(),
            Array::Array(v) => match v.first() {
                Some(a) => format!("array<{}>", a.type_name()),
                None => "array".into(),
            },
        }
    }
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::Str(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F64(v) => v.len(),
            Array::Array(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One tensor's description from the header.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `ne[0]` is the innermost (contiguous) dimension.
    pub ne: Vec<u64>,
    pub ty: GgmlType,
    /// Offset of the data from the start of the data section, in bytes.
    pub offset: u64,
    pub n_elements: u64,
    pub n_bytes: u64,
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub version: u32,
    pub alignment: u64,
    /// Key-value pairs in file order; keys are unique.
    pub metadata: Vec<(String, Value)>,
    /// Tensors in file order.
    pub tensors: Vec<TensorInfo>,
    /// Where the data section starts in the file, in bytes.
    pub data_offset: u64,
}

/// The outcome of [`parse`] on a prefix of a file.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Header(Header),
    /// The header continues past the prefix: at least this many bytes of the
    /// file are needed.
    NeedMore(u64),
}

enum Stop {
    Need(u64),
    Fail(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Fail(e)
    }
}

type R<T> = core::result::Result<T, Stop>;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: u64,
    file_size: u64,
}

impl<'a> Cursor<'a> {
    fn remaining_in_file(&self) -> u64 {
        self.file_size.saturating_sub(self.pos)
    }

    /// Takes `n` bytes, or explains why it cannot: past the end of the file
    /// (an error naming `what`) or past the prefix (need more).
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(|| {
            Error::range_error(format!("{} of {} bytes at offset {} overflows", what(), n, self.pos))
        })?;
        if end > self.file_size {
            return Err(Stop::Fail(Error::range_error(format!(
                "{} at offset {} needs {} bytes but the file ends at {}",
                what(),
                self.pos,
                n,
                self.file_size
            ))));
        }
        if end > self.buf.len() as u64 {
            return Err(Stop::Need(end));
        }
        let s = &self.buf[self.pos as usize..end as usize];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> R<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> R<u64> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap()))
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> R<String> {
        let len = self.u64(&|| format!("length of {}", what()))?;
        if len > self.remaining_in_file() {
            return Err(Stop::Fail(Error::range_error(format!(
                "{} at offset {} claims {} bytes but only {} remain in the file",
                what(),
                self.pos,
                len,
                self.remaining_in_file()
            ))));
        }
        let bytes = self.take(len, what)?;
        match core::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(Stop::Fail(Error::type_error(format!(
                "{} is not valid UTF-8 (bad byte at position {} of {})",
                what(),
                e.valid_up_to(),
                len
            )))),
        }
    }

    /// Checks that `count` elements of at least `min_size` bytes each can fit
    /// in the rest of the file, so a hostile count cannot trigger a huge
    /// allocation or a long loop. When they fit in the file but not in the
    /// prefix at hand (a stream of unknown size, a huge file), it asks for
    /// the bytes they need before anything is allocated: so the count that
    /// comes back is at most the prefix length, and preallocating it is safe
    /// (on wasm32 a `usize` is 32 bits, a count is 64).
    fn check_count(&self, count: u64, min_size: u64, what: &dyn Fn() -> String) -> R<usize> {
        let need = count.checked_mul(min_size);
        match need {
            Some(n) if n <= self.remaining_in_file() => {
                let end = self.pos + n; // <= file_size, cannot overflow
                if end > self.buf.len() as u64 {
                    return Err(Stop::Need(end));
                }
                Ok(count as usize) // count <= n <= buf.len()
            }
            _ => Err(Stop::Fail(Error::range_error(format!(
                "{} claims {} elements, which cannot fit in the {} bytes left in the file",
                what(),
                count,
                self.remaining_in_file()
            )))),
        }
    }

    fn value(&mut self, value_type: u32, depth: u32, what: &dyn Fn() -> String) -> R<Value> {
        Ok(match value_type {
            0 => Value::U8(self.take(1, what)?[0]),
            1 => Value::I8(self.take(1, what)?[0] as i8),
            2 => {
                let b = self.take(2, what)?;
                Value::U16(u16::from_le_bytes([b[0], b[1]]))
            }
            3 => {
                let b = self.take(2, what)?;
                Value::I16(i16::from_le_bytes([b[0], b[1]]))
            }
            4 => Value::U32(self.u32(what)?),
            5 => Value::I32(self.u32(what)? as i32),
            6 => Value::F32(f32::from_bits(self.u32(what)?)),
            7 => Value::Bool(self.boolean(what)?),
            8 => Value::Str(self.string(what)?),
            9 => Value::Array(self.array(depth + 1, what)?),
            10 => Value::U64(self.u64(what)?),
            11 => Value::I64(self.u64(what)? as i64),
            12 => Value::F64(f64::from_bits(self.u64(what)?)),
            t => {
                return Err(Stop::Fail(Error::type_error(format!("{} has unknown value type {}", what(), t))));
            }
        })
    }

    fn boolean(&mut self, what: &dyn Fn() -> String) -> R<bool> {
        match self.take(1, what)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(Stop::Fail(Error::type_error(format!("{} is a bool stored as {}, not 0 or 1", what(), b)))),
        }
    }

    fn array(&mut self, depth: u32, what: &dyn Fn() -> String) -> R<Array> {
        if depth > MAX_ARRAY_DEPTH {
            return Err(Stop::Fail(Error::range_error(format!(
                "{} nests arrays deeper than {}",
                what(),
                MAX_ARRAY_DEPTH
            ))));
        }
        let elem_type = self.u32(&|| format!("element type of {}", what()))?;
        if elem_type > 12 {
            return Err(Stop::Fail(Error::type_error(format!(
                "{} has unknown element type {}",
                what(),
                elem_type
            ))));
        }
        let count = self.u64(&|| format!("element count of {}", what()))?;
        let n = self.check_count(count, min_value_size(elem_type), what)?;
        macro_rules! fixed {
            ($variant:ident, $ty:ty, $size:expr) => {{
                let bytes = self.take(n as u64 * $size, what)?;
                Array::$variant(bytes.chunks_exact($size).map(|c| <$ty>::from_le_bytes(c.try_into().unwrap())).collect())
            }};
        }
        Ok(match elem_type {
            0 => Array::U8(self.take(n as u64, what)?.to_vec()),
            1 => Array::I8(self.take(n as u64, what)?.iter().map(|&b| b as i8).collect()),
            2 => fixed!(U16, u16, 2),
            3 => fixed!(I16, i16, 2),
            4 => fixed!(U32, u32, 4),
            5 => fixed!(I32, i32, 4),
            6 => fixed!(F32, f32, 4),
            7 => {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(self.boolean(&|| format!("element {} of {}", i, what()))?);
                }
                Array::Bool(v)
            }
            8 => {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(self.string(&|| format!("string {} of {}", i, what()))?);
                }
                Array::Str(v)
            }
            9 => {
                let mut v = Vec::with_capacity(n);
                for i in 0..n {
                    v.push(self.array(depth + 1, &|| format!("element {} of {}", i, what()))?);
                }
                Array::Array(v)
            }
            10 => fixed!(U64, u64, 8),
            11 => fixed!(I64, i64, 8),
            12 => fixed!(F64, f64, 8),
            _ => unreachable!(),
        })
    }
}

/// Parses a GGUF header from `buf`, a prefix of a file of `file_size` bytes
/// (`u64::MAX` when the size is unknown, as for a stream).
pub fn parse(buf: &[u8], file_size: u64) -> Result<Parsed> {
    match parse_inner(buf, file_size) {
        Ok(h) => Ok(Parsed::Header(h)),
        Err(Stop::Need(n)) => Ok(Parsed::NeedMore(n)),
        Err(Stop::Fail(e)) => Err(e),
    }
}

fn parse_inner(buf: &[u8], file_size: u64) -> R<Header> {
    let mut c = Cursor { buf, pos: 0, file_size };
    let magic = c.take(4, &|| "the GGUF magic".into())?;
    if magic != MAGIC {
        return Err(Stop::Fail(Error::type_error(format!(
            "not a GGUF file: it starts with bytes {:02x} {:02x} {:02x} {:02x}, not \"GGUF\"",
            magic[0], magic[1], magic[2], magic[3]
        ))));
    }
    let version = c.u32(&|| "the GGUF version".into())?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(Stop::Fail(Error::type_error(
                "GGUF version 1 is not supported (only versions 2 and 3); convert the file again with a current llama.cpp",
            )))
        }
        v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
            return Err(Stop::Fail(Error::type_error(format!(
                "big-endian GGUF files are not supported (version bytes {:02x} {:02x} {:02x} {:02x})",
                v & 0xff,
                (v >> 8) & 0xff,
                (v >> 16) & 0xff,
                v >> 24
            ))))
        }
        v => {
            return Err(Stop::Fail(Error::type_error(format!(
                "unknown GGUF version {} (supported: 2 and 3)",
                v
            ))))
        }
    }
    let tensor_count = c.u64(&|| "the tensor count".into())?;
    let kv_count = c.u64(&|| "the metadata count".into())?;
    // A key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes.
    let kv_n = c.check_count(kv_count, 13, &|| "the metadata count".into())?;
    // A tensor info takes at least 8 (name length) + 4 (n_dims) + 8 (one
    // dimension) + 4 (type) + 8 (offset) bytes.
    let tensor_n = c.check_count(tensor_count, 32, &|| "the tensor count".into())?;
    // Both together must fit too (each part is at most the prefix length, so
    // the sum cannot overflow).
    if kv_n as u64 * 13 + tensor_n as u64 * 32 > c.remaining_in_file() {
        return Err(Stop::Fail(Error::range_error(format!(
            "the metadata count {} and the tensor count {} together cannot fit in the {} bytes left in the file",
            kv_count,
            tensor_count,
            c.remaining_in_file()
        ))));
    }

    let mut metadata: Vec<(String, Value)> = Vec::with_capacity(kv_n);
    // Keys and names seen so far: a set, so a file with many entries is not
    // quadratic to check for duplicates.
    let mut keys: BTreeSet<String> = BTreeSet::new();
    let mut alignment = DEFAULT_ALIGNMENT;
    for i in 0..kv_n {
        let key = c.string(&|| format!("the key of metadata entry {}", i))?;
        let what = || format!("metadata value {:?}", key);
        let value_type = c.u32(&|| format!("the type of {}", what()))?;
        let value = c.value(value_type, 0, &what)?;
        if !keys.insert(key.clone()) {
            return Err(Stop::Fail(Error::type_error(format!("metadata key {:?} appears twice", key))));
        }
        if key == "general.alignment" {
            alignment = match value {
                Value::U32(a) if a != 0 && a.is_power_of_two() => a as u64,
                ref v => {
                    return Err(Stop::Fail(Error::type_error(format!(
                        "general.alignment must be a u32 power of two, got {:?}",
                        v
                    ))))
                }
            };
        }
        metadata.push((key, value));
    }

    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(tensor_n);
    let mut names: BTreeSet<String> = BTreeSet::new();
    for i in 0..tensor_n {
        let name = c.string(&|| format!("the name of tensor {}", i))?;
        let n_dims = c.u32(&|| format!("the dimension count of tensor {}", name))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(Stop::Fail(Error::range_error(format!(
                "tensor {} has {} dimensions (1 to {} allowed)",
                name, n_dims, MAX_DIMS
            ))));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            ne.push(c.u64(&|| format!("dimension {} of tensor {}", d, name))?);
        }
        let type_id = c.u32(&|| format!("the type of tensor {}", name))?;
        let offset = c.u64(&|| format!("the data offset of tensor {}", name))?;
        let ty = GgmlType::from_id(type_id).ok_or_else(|| {
            Error::type_error(format!("tensor {} has unknown ggml type id {}", name, type_id))
        })?;
        let mut n_elements: u64 = 1;
        for &d in &ne {
            if d > i64::MAX as u64 {
                return Err(Stop::Fail(Error::range_error(format!("tensor {} has absurd dimension {}", name, d))));
            }
            n_elements = n_elements.checked_mul(d).ok_or_else(|| {
                Error::range_error(format!("tensor {} has {:?} dimensions whose product overflows", name, ne))
            })?;
        }
        if ne[0] % ty.block_size as u64 != 0 {
            return Err(Stop::Fail(Error::type_error(format!(
                "tensor {} has rows of {} elements, not a multiple of the {} block size {}",
                name, ne[0], ty.name, ty.block_size
            ))));
        }
        let n_bytes = ty.bytes_for(n_elements).map_err(|e| Error {
            kind: e.kind,
            message: format!("tensor {}: {}", name, e.message),
        })?;
        if offset % alignment != 0 {
            return Err(Stop::Fail(Error::range_error(format!(
                "tensor {} data offset {} is not a multiple of the alignment {}",
                name, offset, alignment
            ))));
        }
        if !names.insert(name.clone()) {
            return Err(Stop::Fail(Error::type_error(format!("tensor name {} appears twice", name))));
        }
        tensors.push(TensorInfo { name, ne, ty, offset, n_elements, n_bytes });
    }

    let header_end = c.pos;
    let data_offset = header_end
        .checked_add(alignment - 1)
        .map(|x| x / alignment * alignment)
        .ok_or_else(|| Error::range_error("the data section offset overflows"))?;

    // Every tensor must lie inside the file and no two may overlap.
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| tensors[i].offset);
    let mut prev_end: u64 = 0;
    let mut prev_name: Option<&str> = None;
    for &i in &order {
        let t = &tensors[i];
        let end = data_offset
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(t.n_bytes))
            .ok_or_else(|| Error::range_error(format!("tensor {} offset {} overflows", t.name, t.offset)))?;
        if end > file_size {
            return Err(Stop::Fail(Error::range_error(format!(
                "tensor {} ends past the file (its data ends at byte {}, the file has {})",
                t.name, end, file_size
            ))));
        }
        if t.offset < prev_end {
            return Err(Stop::Fail(Error::range_error(format!(
                "tensors {} and {} overlap ({} ends at data offset {}, {} starts at {})",
                prev_name.unwrap_or("?"),
                t.name,
                prev_name.unwrap_or("?"),
                prev_end,
                t.name,
                t.offset
            ))));
        }
        prev_end = t.offset + t.n_bytes;
        prev_name = Some(&t.name);
    }

    Ok(Header { version, alignment, metadata, tensors, data_offset })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny GGUF writer for tests.
    pub struct W(pub Vec<u8>);
    impl W {
        fn u32(&mut self, v: u32) -> &mut Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        fn u64(&mut self, v: u64) -> &mut Self {
            self.0.extend_from_slice(&v.to_le_bytes());
            self
        }
        fn s(&mut self, v: &str) -> &mut Self {
            self.u64(v.len() as u64);
            self.0.extend_from_slice(v.as_bytes());
            self
        }
    }

    fn small_file() -> Vec<u8> {
        let mut w = W(b"GGUF".to_vec());
        w.u32(3).u64(2).u64(2);
        w.s("general.architecture").u32(8).s("llama");
        w.s("tokenizer.ggml.tokens").u32(9).u32(8).u64(2).s("a").s("b");
        w.s("t0").u32(2).u64(32).u64(2).u32(0).u64(0); // f32 32x2 = 256 bytes
        w.s("t1").u32(1).u64(32).u32(8).u64(256); // q8_0 32 = 34 bytes
        let pad = (32 - w.0.len() % 32) % 32;
        w.0.extend(std::iter::repeat(0).take(pad));
        w.0.extend(std::iter::repeat(1).take(256 + 34));
        w.0
    }

    #[test]
    fn parses_small_file_and_asks_for_more() {
        let f = small_file();
        let n = f.len() as u64;
        let h = match parse(&f, n).unwrap() {
            Parsed::Header(h) => h,
            p => panic!("{:?}", p),
        };
        assert_eq!(h.tensors.len(), 2);
        assert_eq!(h.tensors[1].n_bytes, 34);
        assert_eq!(h.data_offset % 32, 0);
        assert!(matches!(parse(&f[..20], n).unwrap(), Parsed::NeedMore(_)));
    }

    #[test]
    fn every_truncation_is_an_error_or_need_more() {
        let f = small_file();
        for cut in 0..f.len() {
            // As a whole (truncated) file it must be an error.
            assert!(parse(&f[..cut], cut as u64).is_err(), "cut {}", cut);
        }
    }

    #[test]
    fn huge_counts_of_unknown_size_ask_for_bytes_instead_of_allocating() {
        // A stream of unknown size: 2^28 entries "fit", but nothing may be
        // preallocated for them before their bytes are there.
        let mut w = W(b"GGUF".to_vec());
        w.u32(3).u64(0).u64(1 << 28);
        match parse(&w.0, u64::MAX).unwrap() {
            Parsed::NeedMore(n) => assert!(n >= 24 + (1 << 28) * 13, "{}", n),
            p => panic!("{:?}", p),
        }
        for (count, ty, min) in [(1u64 << 40, 8u32, 8u64), (1 << 32 | 1, 4, 4), (1 << 28, 9, 12)] {
            let mut w = W(b"GGUF".to_vec());
            w.u32(3).u64(0).u64(1);
            w.s("a").u32(9).u32(ty).u64(count);
            match parse(&w.0, u64::MAX).unwrap() {
                Parsed::NeedMore(n) => assert!(n >= count * min, "{}", n),
                p => panic!("{:?}", p),
            }
        }
    }

    #[test]
    fn many_keys_are_checked_for_duplicates_quickly() {
        let n = 50_000u64;
        let mut w = W(b"GGUF".to_vec());
        w.u32(3).u64(0).u64(n + 1);
        for i in 0..n {
            w.s(&format!("k{}", i)).u32(0);
            w.0.push(0);
        }
        w.s("k7").u32(0);
        w.0.push(0);
        let e = parse(&w.0, w.0.len() as u64).unwrap_err();
        assert!(e.message.contains("\"k7\" appears twice"), "{}", e.message);
    }

    #[test]
    fn counts_that_fit_alone_but_not_together_are_errors() {
        let mut w = W(b"GGUF".to_vec());
        w.u32(3).u64(2).u64(4);
        w.0.extend(std::iter::repeat(0).take(70)); // 4 * 13 fits, 2 * 32 fits, not both
        let e = parse(&w.0, w.0.len() as u64).unwrap_err();
        assert!(e.message.contains("together cannot fit"), "{}", e.message);
    }

    #[test]
    fn absurd_counts_are_errors() {
        let mut w = W(b"GGUF".to_vec());
        w.u32(3).u64(u64::MAX).u64(0);
        let e = parse(&w.0, w.0.len() as u64).unwrap_err();
        assert!(e.message.contains("tensor count"), "{}", e.message);
    }
}
