//! alisa's Rust core, compiled to WebAssembly and bound with wasm-bindgen.
//!
//! Everything here is pure computation on bytes the TypeScript side hands in:
//! header parsing (GGUF, safetensors, SentencePiece), dequantization. The
//! TypeScript side owns I/O, so a multi-GB model is read tensor by tensor and
//! never held whole in Wasm memory. Every fallible export returns a JS
//! `TypeError` or `RangeError` with a message naming the problem.

pub mod bpe;
pub mod dequant;
pub mod error;
pub mod ggml_type;
pub mod gguf;
pub mod int8;
pub mod safetensors_header;
pub mod sentencepiece_model;
pub mod text;
pub mod tokenizer;

use error::{Error, Kind};
use ggml_type::GgmlType;
use js_sys::{Array, Map, Object, Reflect};
use wasm_bindgen::prelude::*;

fn js_err(e: Error) -> JsValue {
    match e.kind {
        Kind::Type => js_sys::TypeError::new(&e.message).into(),
        Kind::Range => js_sys::RangeError::new(&e.message).into(),
    }
}

fn set(o: &Object, k: &str, v: impl Into<JsValue>) {
    // Setting a data property on a fresh plain object cannot fail.
    let _ = Reflect::set(o, &JsValue::from_str(k), &v.into());
}

/// Largest integer a JS number holds exactly.
const MAX_SAFE: u64 = (1 << 53) - 1;

fn safe_num(x: u64, what: &str) -> Result<f64, JsValue> {
    if x > MAX_SAFE {
        Err(js_err(Error::range_error(format!("{} {} is larger than 2^53", what, x))))
    } else {
        Ok(x as f64)
    }
}

fn file_size_arg(file_size: Option<f64>) -> Result<u64, JsValue> {
    match file_size {
        None => Ok(u64::MAX),
        Some(s) if s >= 0.0 && s <= MAX_SAFE as f64 && s.fract() == 0.0 => Ok(s as u64),
        Some(s) => Err(js_err(Error::range_error(format!("invalid file size {}", s)))),
    }
}

fn array_to_js(a: &gguf::Array) -> JsValue {
    use gguf::Array as A;
    match a {
        A::U8(v) => js_sys::Uint8Array::from(&v[..]).into(),
        A::I8(v) => js_sys::Int8Array::from(&v[..]).into(),
        A::U16(v) => js_sys::Uint16Array::from(&v[..]).into(),
        A::I16(v) => js_sys::Int16Array::from(&v[..]).into(),
        A::U32(v) => js_sys::Uint32Array::from(&v[..]).into(),
        A::I32(v) => js_sys::Int32Array::from(&v[..]).into(),
        A::F32(v) => js_sys::Float32Array::from(&v[..]).into(),
        A::U64(v) => js_sys::BigUint64Array::from(&v[..]).into(),
        A::I64(v) => js_sys::BigInt64Array::from(&v[..]).into(),
        A::F64(v) => js_sys::Float64Array::from(&v[..]).into(),
        A::Bool(v) => v.iter().map(|&b| JsValue::from_bool(b)).collect::<Array>().into(),
        A::Str(v) => v.iter().map(|s| JsValue::from_str(s)).collect::<Array>().into(),
        A::Array(v) => v.iter().map(array_to_js).collect::<Array>().into(),
    }
}

fn value_to_js(v: &gguf::Value) -> JsValue {
    use gguf::Value as V;
    match v {
        V::U8(x) => (*x).into(),
        V::I8(x) => (*x).into(),
        V::U16(x) => (*x).into(),
        V::I16(x) => (*x).into(),
        V::U32(x) => (*x).into(),
        V::I32(x) => (*x).into(),
        V::F32(x) => (*x as f64).into(),
        V::Bool(x) => (*x).into(),
        V::Str(s) => JsValue::from_str(s),
        V::U64(x) => js_sys::BigInt::from(*x).into(),
        V::I64(x) => js_sys::BigInt::from(*x).into(),
        V::F64(x) => (*x).into(),
        V::Array(a) => array_to_js(a),
    }
}

/// Parses a GGUF header from a prefix of the file.
///
/// Returns `{ needBytes }` when the header continues past `prefix`, or the
/// header: `{ version, alignment, dataOffset, metadata: Map<string, value>,
/// metadataTypes: Map<string, string>, tensors: [{ name, ne, typeId,
/// typeName, offset, nElements, nBytes }] }`. `fileSize` undefined means
/// unknown (a stream); then data bounds are checked while reading.
#[wasm_bindgen(js_name = ggufParseHeader)]
pub fn gguf_parse_header(prefix: &[u8], file_size: Option<f64>) -> Result<JsValue, JsValue> {
    let size = file_size_arg(file_size)?;
    let h = match gguf::parse(prefix, size).map_err(js_err)? {
        gguf::Parsed::NeedMore(n) => {
            let o = Object::new();
            set(&o, "needBytes", safe_num(n, "header size")?);
            return Ok(o.into());
        }
        gguf::Parsed::Header(h) => h,
    };
    let metadata = Map::new();
    let types = Map::new();
    for (k, v) in &h.metadata {
        metadata.set(&JsValue::from_str(k), &value_to_js(v));
        types.set(&JsValue::from_str(k), &JsValue::from_str(&v.type_name()));
    }
    let tensors = Array::new();
    for t in &h.tensors {
        let o = Object::new();
        set(&o, "name", t.name.as_str());
        let ne = Array::new();
        for &d in &t.ne {
            ne.push(&safe_num(d, "dimension")?.into());
        }
        set(&o, "ne", ne);
        set(&o, "typeId", t.ty.id);
        set(&o, "typeName", t.ty.name);
        set(&o, "offset", safe_num(t.offset, "tensor offset")?);
        set(&o, "nElements", safe_num(t.n_elements, "element count")?);
        set(&o, "nBytes", safe_num(t.n_bytes, "byte count")?);
        tensors.push(&o);
    }
    let o = Object::new();
    set(&o, "version", h.version);
    set(&o, "alignment", safe_num(h.alignment, "alignment")?);
    set(&o, "dataOffset", safe_num(h.data_offset, "data offset")?);
    set(&o, "metadata", metadata);
    set(&o, "metadataTypes", types);
    set(&o, "tensors", tensors);
    Ok(o.into())
}

/// Parses a safetensors header from a prefix of the file: `{ needBytes }` or
/// `{ dataOffset, metadata: Map<string, string>, tensors: [{ name, dtype,
/// shape, begin, end }] }` (offsets relative to `dataOffset`).
#[wasm_bindgen(js_name = safetensorsParseHeader)]
pub fn safetensors_parse_header(prefix: &[u8], file_size: f64) -> Result<JsValue, JsValue> {
    let size = file_size_arg(Some(file_size))?;
    let h = match safetensors_header::parse(prefix, size).map_err(js_err)? {
        safetensors_header::Parsed::NeedMore(n) => {
            let o = Object::new();
            set(&o, "needBytes", safe_num(n, "header size")?);
            return Ok(o.into());
        }
        safetensors_header::Parsed::Header(h) => h,
    };
    let tensors = Array::new();
    for t in &h.tensors {
        let o = Object::new();
        set(&o, "name", t.name.as_str());
        set(&o, "dtype", t.dtype.as_str());
        let shape = Array::new();
        for &d in &t.shape {
            shape.push(&safe_num(d, "dimension")?.into());
        }
        set(&o, "shape", shape);
        set(&o, "begin", safe_num(t.begin, "offset")?);
        set(&o, "end", safe_num(t.end, "offset")?);
        tensors.push(&o);
    }
    let metadata = Map::new();
    for (k, v) in &h.metadata {
        metadata.set(&JsValue::from_str(k), &JsValue::from_str(v));
    }
    let o = Object::new();
    set(&o, "dataOffset", safe_num(h.data_offset, "data offset")?);
    set(&o, "metadata", metadata);
    set(&o, "tensors", tensors);
    Ok(o.into())
}

/// The ggml type table: `[{ id, name, blockSize, typeSize, dequantizable }]`.
#[wasm_bindgen(js_name = ggmlTypes)]
pub fn ggml_types() -> Array {
    ggml_type::TYPES
        .iter()
        .map(|t| {
            let o = Object::new();
            set(&o, "id", t.id);
            set(&o, "name", t.name);
            set(&o, "blockSize", t.block_size);
            set(&o, "typeSize", t.type_size);
            set(&o, "dequantizable", t.dequantizable);
            JsValue::from(o)
        })
        .collect()
}

fn type_by_id(type_id: u32) -> Result<GgmlType, JsValue> {
    GgmlType::from_id(type_id)
        .ok_or_else(|| js_err(Error::type_error(format!("unknown ggml type id {}", type_id))))
}

fn dequant_vec(type_id: u32, src: &[u8], n_elements: usize) -> Result<Vec<f32>, JsValue> {
    let ty = type_by_id(type_id)?;
    let mut out = Vec::new();
    out.try_reserve_exact(n_elements).map_err(|_| {
        js_err(Error::range_error(format!("out of Wasm memory for {} elements", n_elements)))
    })?;
    out.resize(n_elements, 0.0);
    dequant::dequantize(ty, src, &mut out).map_err(js_err)?;
    Ok(out)
}

/// Dequantizes whole blocks of ggml type `typeId` to f32.
#[wasm_bindgen(js_name = dequantizeF32)]
pub fn dequantize_f32(type_id: u32, src: &[u8], n_elements: usize) -> Result<Vec<f32>, JsValue> {
    dequant_vec(type_id, src, n_elements)
}

/// Dequantizes whole blocks of ggml type `typeId` to IEEE f16 bits
/// (round to nearest even; F16 input is copied unchanged).
#[wasm_bindgen(js_name = dequantizeF16)]
pub fn dequantize_f16(type_id: u32, src: &[u8], n_elements: usize) -> Result<Vec<u16>, JsValue> {
    if type_id == 1 {
        if src.len() != n_elements * 2 {
            return Err(js_err(Error::range_error(format!(
                "F16 data is {} bytes, expected {}",
                src.len(),
                n_elements * 2
            ))));
        }
        return Ok(src.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect());
    }
    let f = dequant_vec(type_id, src, n_elements)?;
    let mut out = vec![0u16; n_elements];
    dequant::f32_to_f16_bits(&f, &mut out);
    Ok(out)
}

/// Parses a SentencePiece `tokenizer.model`: `{ pieces, scores, types,
/// modelType, byteFallback, unkId, bosId, eosId, padId, addDummyPrefix,
/// removeExtraWhitespaces }`.
#[wasm_bindgen(js_name = sentencepieceParse)]
pub fn sentencepiece_parse(bytes: &[u8]) -> Result<JsValue, JsValue> {
    let m = sentencepiece_model::parse(bytes).map_err(js_err)?;
    let o = Object::new();
    set(&o, "pieces", m.pieces.iter().map(|s| JsValue::from_str(s)).collect::<Array>());
    set(&o, "scores", js_sys::Float32Array::from(&m.scores[..]));
    set(&o, "types", js_sys::Int32Array::from(&m.types[..]));
    set(&o, "modelType", m.model_type);
    set(&o, "byteFallback", m.byte_fallback);
    set(&o, "unkId", m.unk_id);
    set(&o, "bosId", m.bos_id);
    set(&o, "eosId", m.eos_id);
    set(&o, "padId", m.pad_id);
    set(&o, "addDummyPrefix", m.add_dummy_prefix);
    set(&o, "removeExtraWhitespaces", m.remove_extra_whitespaces);
    Ok(o.into())
}
