//! Reads a SentencePiece `ModelProto` (a Hugging Face `tokenizer.model`):
//! the pieces with their scores and types, and the trainer/normalizer flags
//! that change encoding. A small protobuf wire-format reader, since the file
//! uses a handful of fields and the prost/protobuf crates would add their
//! code generation for that.
//!
//! Fields read (sentencepiece_model.proto):
//! - `ModelProto.pieces = 1` (repeated `SentencePiece { piece = 1; score = 2; type = 3 }`)
//! - `ModelProto.trainer_spec = 2` (`model_type = 3`, `byte_fallback = 35`,
//!   `unk_id = 40`, `bos_id = 41`, `eos_id = 42`, `pad_id = 43`)
//! - `ModelProto.normalizer_spec = 3` (`add_dummy_prefix = 3`,
//!   `remove_extra_whitespaces = 4`)

use crate::error::{Error, Result};

/// SentencePiece piece types (`SentencePiece.Type`).
pub const NORMAL: i32 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub pieces: Vec<String>,
    pub scores: Vec<f32>,
    /// 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte.
    pub types: Vec<i32>,
    /// 1 unigram, 2 bpe, 3 word, 4 char.
    pub model_type: i32,
    pub byte_fallback: bool,
    pub unk_id: i32,
    pub bos_id: i32,
    pub eos_id: i32,
    pub pad_id: i32,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
}

struct Pb<'a> {
    b: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint(u64),
    Fixed32(u32),
    Fixed64,
    Bytes(&'a [u8]),
}

impl<'a> Pb<'a> {
    fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let byte = *self
                .b
                .get(self.pos)
                .ok_or_else(|| Error::range_error("tokenizer.model: truncated varint"))?;
            self.pos += 1;
            v |= ((byte & 0x7f) as u64) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::type_error("tokenizer.model: varint longer than 10 bytes"))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| {
            Error::range_error(format!(
                "tokenizer.model: a field of {} bytes at offset {} runs past the end ({} bytes)",
                n,
                self.pos,
                self.b.len()
            ))
        })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>> {
        if self.pos >= self.b.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        Ok(Some((
            field,
            match key & 7 {
                0 => Field::Varint(self.varint()?),
                1 => {
                    self.bytes(8)?;
                    Field::Fixed64
                }
                2 => {
                    let n = self.varint()?;
                    let n = usize::try_from(n).map_err(|_| Error::range_error("tokenizer.model: absurd length"))?;
                    Field::Bytes(self.bytes(n)?)
                }
                5 => Field::Fixed32(u32::from_le_bytes(self.bytes(4)?.try_into().unwrap())),
                w => {
                    return Err(Error::type_error(format!(
                        "tokenizer.model: unsupported protobuf wire type {} (not a SentencePiece model?)",
                        w
                    )))
                }
            },
        )))
    }
}

pub fn parse(b: &[u8]) -> Result<Model> {
    let mut m = Model {
        pieces: Vec::new(),
        scores: Vec::new(),
        types: Vec::new(),
        model_type: 1,
        byte_fallback: false,
        unk_id: 0,
        bos_id: 1,
        eos_id: 2,
        pad_id: -1,
        add_dummy_prefix: true,
        remove_extra_whitespaces: true,
    };
    let mut pb = Pb { b, pos: 0 };
    while let Some((field, value)) = pb.next()? {
        match (field, value) {
            (1, Field::Bytes(piece)) => {
                let mut p = Pb { b: piece, pos: 0 };
                let (mut text, mut score, mut ty) = (None, 0f32, NORMAL);
                while let Some((f, v)) = p.next()? {
                    match (f, v) {
                        (1, Field::Bytes(s)) => {
                            text = Some(String::from_utf8(s.to_vec()).map_err(|_| {
                                Error::type_error(format!(
                                    "tokenizer.model: piece {} is not valid UTF-8",
                                    m.pieces.len()
                                ))
                            })?)
                        }
                        (2, Field::Fixed32(bits)) => score = f32::from_bits(bits),
                        (3, Field::Varint(t)) => ty = t as i32,
                        _ => {}
                    }
                }
                let text = text.ok_or_else(|| {
                    Error::type_error(format!("tokenizer.model: piece {} has no text", m.pieces.len()))
                })?;
                m.pieces.push(text);
                m.scores.push(score);
                m.types.push(ty);
            }
            (2, Field::Bytes(spec)) => {
                let mut p = Pb { b: spec, pos: 0 };
                while let Some((f, v)) = p.next()? {
                    if let Field::Varint(x) = v {
                        match f {
                            3 => m.model_type = x as i32,
                            35 => m.byte_fallback = x != 0,
                            40 => m.unk_id = x as i32,
                            41 => m.bos_id = x as i32,
                            42 => m.eos_id = x as i32,
                            43 => m.pad_id = x as i32,
                            _ => {}
                        }
                    }
                }
            }
            (3, Field::Bytes(spec)) => {
                let mut p = Pb { b: spec, pos: 0 };
                while let Some((f, v)) = p.next()? {
                    if let Field::Varint(x) = v {
                        match f {
                            3 => m.add_dummy_prefix = x != 0,
                            4 => m.remove_extra_whitespaces = x != 0,
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if m.pieces.is_empty() {
        return Err(Error::type_error("tokenizer.model has no pieces (not a SentencePiece model?)"));
    }
    Ok(m)
}
