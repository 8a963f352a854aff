//! SentencePiece BPE tokenization for Llama 1/2-style vocabularies (GGUF
//! `tokenizer.ggml.model == "llama"`, or a Hugging Face `tokenizer.model` of
//! model type BPE), following llama.cpp's `llm_tokenizer_spm`:
//!
//! - Encoding: user-defined pieces (and, with `parse_special`, control
//!   pieces) are cut out of the text first, longest first, as llama.cpp's
//!   `tokenizer_st_partition` does. Each remaining fragment gets spaces
//!   replaced by `▁` (U+2581) and, when the model adds a dummy prefix and the
//!   fragment starts the text or follows a special piece, a leading `▁`. It is
//!   split into UTF-8 characters, and the adjacent pair whose concatenation is
//!   a piece with the highest score is merged (ties: the leftmost) until no
//!   pair is a piece, with a priority queue (O(n log n)). Characters that are
//!   no piece become `<0xNN>` byte pieces, or the unknown piece when the
//!   vocabulary has no byte pieces. Control, unknown and byte pieces are
//!   never formed by merging.
//! - Decoding: normal pieces with `▁` turned back into spaces, byte pieces as
//!   their byte, user-defined pieces as they are, control and unknown pieces
//!   as nothing (llama.cpp's `token_to_piece` without `special`); when
//!   decoding from the start of a text with a dummy prefix, the first
//!   space is dropped once. The bytes must be UTF-8: invalid sequences are an
//!   error, or U+FFFD in lossy mode (maximal subparts, as `TextDecoder`).
//! - [`DecodeState`] decodes one id at a time and never returns half a
//!   character; its output concatenated equals [`Spm::decode`] of all ids.

use crate::error::{Error, Result};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use crate::text::{quote, Fx, Utf8Stream};

/// SentencePiece / GGUF piece types.
pub const UNDEFINED: i32 = 0;
pub const NORMAL: i32 = 1;
pub const UNKNOWN: i32 = 2;
pub const CONTROL: i32 = 3;
pub const USER_DEFINED: i32 = 4;
pub const UNUSED: i32 = 5;
pub const BYTE: i32 = 6;

const NONE: u32 = u32::MAX;
const SPACE: char = '\u{2581}';


type PieceMap = HashMap<Box<str>, u32, Fx>;

/// Settings that are not part of the piece list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The unknown piece, used for characters without a piece when the
    /// vocabulary has no byte pieces.
    pub unk_id: Option<u32>,
    /// Prefix each text with `▁` (SentencePiece's `add_dummy_prefix`, GGUF
    /// `tokenizer.ggml.add_space_prefix`), and drop it again when decoding.
    pub add_space_prefix: bool,
}

/// A SentencePiece BPE vocabulary ready to encode and decode.
#[derive(Debug, Clone)]
pub struct Spm {
    pieces: Vec<Box<str>>,
    scores: Vec<f32>,
    types: Vec<u8>,
    /// Pieces a merge may produce: normal, user-defined, unused, undefined.
    mergeable: PieceMap,
    /// `<0xNN>` piece of each byte, or `NONE`.
    byte_ids: [u32; 256],
    has_byte_pieces: bool,
    unk: Option<u32>,
    add_space_prefix: bool,
    /// User-defined, control and unknown pieces, longest first: matched
    /// literally before BPE (control and unknown only with `parse_special`).
    specials: Vec<u32>,
    /// No mergeable piece has `▁` right after another character, so no
    /// merge can cross the boundary before a `▁` that follows a non-`▁`
    /// character: the text is encoded word by word with the same result.
    split_words: bool,
    scratch: RefCell<Scratch>,
}

/// Reusable buffers of `encode`, with a cache of the ids of the words seen
/// so far (prose repeats most words).
#[derive(Default)]
struct Scratch {
    syms: Vec<Sym>,
    heap: BinaryHeap<Bigram>,
    cache: HashMap<Box<str>, Box<[u32]>, Fx>,
}

impl Clone for Scratch {
    fn clone(&self) -> Self {
        Scratch::default()
    }
}

impl core::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Scratch({} cached words)", self.cache.len())
    }
}

/// Words up to this many bytes are cached.
const CACHE_MAX_WORD: usize = 64;
/// The cache is emptied when it holds this many words.
const CACHE_MAX_ENTRIES: usize = 1 << 16;

fn parse_byte_piece(p: &str) -> Option<u8> {
    let h = p.strip_prefix("<0x")?.strip_suffix('>')?;
    if h.len() != 2 {
        return None;
    }
    u8::from_str_radix(h, 16).ok()
}

#[derive(Clone, Copy)]
struct Sym {
    start: u32,
    len: u32,
    prev: u32,
    next: u32,
}

#[derive(Clone, Copy, PartialEq)]
struct Bigram {
    score: f32,
    left: u32,
    right: u32,
    size: u32,
}

impl Eq for Bigram {}

impl Ord for Bigram {
    /// Highest score first, then the leftmost (llama.cpp's comparator).
    /// Scores are never NaN and never -0 (normalized on construction).
    fn cmp(&self, o: &Self) -> Ordering {
        self.score.total_cmp(&o.score).then_with(|| o.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

enum Fragment {
    Raw(usize, usize),
    Token(u32),
}

impl Spm {
    /// Builds a tokenizer from parallel piece, score and type lists.
    pub fn new(pieces: Vec<String>, scores: &[f32], types: &[i32], opts: Options) -> Result<Spm> {
        let n = pieces.len();
        if n == 0 {
            return Err(Error::type_error("the vocabulary has no tokens"));
        }
        if n >= NONE as usize {
            return Err(Error::range_error(format!("the vocabulary has too many tokens ({})", n)));
        }
        if scores.len() != n {
            return Err(Error::range_error(format!(
                "the vocabulary has {} tokens but {} scores",
                n,
                scores.len()
            )));
        }
        if types.len() != n {
            return Err(Error::range_error(format!(
                "the vocabulary has {} tokens but {} token types",
                n,
                types.len()
            )));
        }
        if let Some(u) = opts.unk_id {
            if u as usize >= n {
                return Err(Error::range_error(format!(
                    "unknown token id {} is out of range (the vocabulary has {} tokens)",
                    u, n
                )));
            }
        }
        let mut mergeable = PieceMap::default();
        mergeable.reserve(n);
        let mut byte_ids = [NONE; 256];
        let mut has_byte_pieces = false;
        let mut specials = Vec::new();
        let mut out_scores = Vec::with_capacity(n);
        let mut out_types = Vec::with_capacity(n);
        for (i, p) in pieces.iter().enumerate() {
            let t = types[i];
            let s = scores[i];
            if s.is_nan() {
                return Err(Error::type_error(format!("token {} ({}) has a NaN score", i, quote(p))));
            }
            out_scores.push(s + 0.0); // -0 -> +0, so total_cmp ties them
            match t {
                UNDEFINED | NORMAL | UNUSED => {
                    if !p.is_empty() {
                        mergeable.insert(p.as_str().into(), i as u32);
                    }
                }
                USER_DEFINED => {
                    if !p.is_empty() {
                        mergeable.insert(p.as_str().into(), i as u32);
                        specials.push(i as u32);
                    }
                }
                UNKNOWN | CONTROL => {
                    if !p.is_empty() {
                        specials.push(i as u32);
                    }
                }
                BYTE => {
                    let b = parse_byte_piece(p).ok_or_else(|| {
                        Error::type_error(format!(
                            "byte token {} is {}, expected the form <0xNN>",
                            i,
                            quote(p)
                        ))
                    })?;
                    byte_ids[b as usize] = i as u32;
                    has_byte_pieces = true;
                }
                _ => {
                    return Err(Error::type_error(format!(
                        "token {} ({}) has unknown type {} (expected 0 to 6)",
                        i,
                        quote(p),
                        t
                    )))
                }
            }
            out_types.push(t as u8);
        }
        // Longest first; equal lengths by id, so the order is deterministic.
        specials.sort_by(|&a, &b| {
            pieces[b as usize].len().cmp(&pieces[a as usize].len()).then(a.cmp(&b))
        });
        let split_words = !mergeable.keys().any(|p| {
            let mut prev = None;
            p.chars().any(|c| {
                let hit = c == SPACE && prev.is_some_and(|q| q != SPACE);
                prev = Some(c);
                hit
            })
        });
        Ok(Spm {
            split_words,
            scratch: RefCell::default(),
            pieces: pieces.into_iter().map(String::into_boxed_str).collect(),
            scores: out_scores,
            types: out_types,
            mergeable,
            byte_ids,
            has_byte_pieces,
            unk: opts.unk_id,
            add_space_prefix: opts.add_space_prefix,
            specials,
        })
    }

    /// Builds a tokenizer from a parsed SentencePiece `tokenizer.model`;
    /// only BPE models are supported.
    pub fn from_sentencepiece(m: crate::sentencepiece_model::Model) -> Result<Spm> {
        match m.model_type {
            2 => {}
            1 => {
                return Err(Error::type_error(
                    "SentencePiece unigram models are not supported yet (only BPE)",
                ))
            }
            t => {
                return Err(Error::type_error(format!(
                    "SentencePiece model type {} is not supported (only BPE, type 2)",
                    t
                )))
            }
        }
        let unk = u32::try_from(m.unk_id).ok().filter(|&u| (u as usize) < m.pieces.len());
        let opts = Options { unk_id: unk, add_space_prefix: m.add_dummy_prefix };
        Spm::new(m.pieces, &m.scores, &m.types, opts)
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    pub fn piece(&self, id: u32) -> Result<&str> {
        self.check_id(id)?;
        Ok(&self.pieces[id as usize])
    }

    pub fn token_type(&self, id: u32) -> Result<i32> {
        self.check_id(id)?;
        Ok(self.types[id as usize] as i32)
    }

    pub fn score(&self, id: u32) -> Result<f32> {
        self.check_id(id)?;
        Ok(self.scores[id as usize])
    }

    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    fn check_id(&self, id: u32) -> Result<()> {
        if (id as usize) < self.pieces.len() {
            Ok(())
        } else {
            Err(Error::range_error(format!(
                "token id {} is out of range (the vocabulary has {} tokens)",
                id,
                self.pieces.len()
            )))
        }
    }

    /// Encodes `text` (no BOS/EOS), appending ids to `out`. With
    /// `parse_special`, control pieces in the text (`<s>`) become their ids.
    pub fn encode_into(&self, text: &str, parse_special: bool, out: &mut Vec<u32>) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let mut frags = vec![Fragment::Raw(0, text.len())];
        for &id in &self.specials {
            let ty = self.types[id as usize] as i32;
            if ty != USER_DEFINED && !parse_special {
                continue;
            }
            let pat = &*self.pieces[id as usize];
            if !text.contains(pat) {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                match f {
                    Fragment::Raw(a, b) => {
                        let mut pos = a;
                        while let Some(i) = text[pos..b].find(pat) {
                            if i > 0 {
                                next.push(Fragment::Raw(pos, pos + i));
                            }
                            next.push(Fragment::Token(id));
                            pos += i + pat.len();
                        }
                        if pos < b {
                            next.push(Fragment::Raw(pos, b));
                        }
                    }
                    t => next.push(t),
                }
            }
            frags = next;
        }
        let mut prev_special = true;
        let mut buf = String::new();
        let mut scratch = self.scratch.borrow_mut();
        for f in frags {
            match f {
                Fragment::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Fragment::Raw(a, b) => {
                    buf.clear();
                    buf.reserve(b - a + 3);
                    if self.add_space_prefix && prev_special {
                        buf.push(SPACE);
                    }
                    let s = &text[a..b];
                    let mut last = 0;
                    for (i, _) in s.match_indices(' ') {
                        buf.push_str(&s[last..i]);
                        buf.push(SPACE);
                        last = i + 1;
                    }
                    buf.push_str(&s[last..]);
                    self.encode_escaped(&buf, out, &mut scratch)?;
                    prev_special = false;
                }
            }
        }
        // Do not keep the buffers of one huge unsplit text alive.
        if scratch.syms.capacity() > 1 << 16 {
            scratch.syms = Vec::new();
            scratch.heap = BinaryHeap::new();
        }
        Ok(())
    }

    /// Encodes `text` (no BOS/EOS).
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_into(text, parse_special, &mut out)?;
        Ok(out)
    }

    #[inline]
    fn push_bigram(&self, text: &str, syms: &[Sym], left: u32, right: u32, heap: &mut BinaryHeap<Bigram>) {
        if left == NONE || right == NONE {
            return;
        }
        let l = &syms[left as usize];
        let r = &syms[right as usize];
        let start = l.start as usize;
        let size = l.len + r.len;
        if let Some(&id) = self.mergeable.get(&text[start..start + size as usize]) {
            heap.push(Bigram { score: self.scores[id as usize], left, right, size });
        }
    }

    /// Encodes a fragment whose spaces are already `▁`: word by word when
    /// that gives the same result (`split_words`), with a cache.
    fn encode_escaped(&self, text: &str, out: &mut Vec<u32>, sc: &mut Scratch) -> Result<()> {
        if text.len() >= NONE as usize {
            return Err(Error::range_error(format!("text of {} bytes is too long", text.len())));
        }
        if !self.split_words {
            return self.bpe(text, out, sc);
        }
        let mut start = 0;
        let mut prev_space = true;
        for (i, c) in text.char_indices() {
            let space = c == SPACE;
            if space && !prev_space && i > start {
                self.encode_word(&text[start..i], out, sc)?;
                start = i;
            }
            prev_space = space;
        }
        self.encode_word(&text[start..], out, sc)
    }

    fn encode_word(&self, word: &str, out: &mut Vec<u32>, sc: &mut Scratch) -> Result<()> {
        if word.len() > CACHE_MAX_WORD {
            return self.bpe(word, out, sc);
        }
        if let Some(ids) = sc.cache.get(word) {
            out.extend_from_slice(ids);
            return Ok(());
        }
        let from = out.len();
        self.bpe(word, out, sc)?;
        if sc.cache.len() >= CACHE_MAX_ENTRIES {
            sc.cache.clear();
        }
        sc.cache.insert(word.into(), out[from..].into());
        Ok(())
    }

    /// BPE merges over one piece of text (spaces already `▁`).
    fn bpe(&self, text: &str, out: &mut Vec<u32>, sc: &mut Scratch) -> Result<()> {
        let syms = &mut sc.syms;
        let heap = &mut sc.heap;
        syms.clear();
        heap.clear();
        for (i, c) in text.char_indices() {
            let k = syms.len() as u32;
            syms.push(Sym {
                start: i as u32,
                len: c.len_utf8() as u32,
                prev: if k == 0 { NONE } else { k - 1 },
                next: k + 1,
            });
        }
        let Some(last) = syms.last_mut() else { return Ok(()) };
        last.next = NONE;
        for i in 1..syms.len() as u32 {
            self.push_bigram(text, syms, i - 1, i, heap);
        }
        while let Some(bg) = heap.pop() {
            let (l, r) = (bg.left as usize, bg.right as usize);
            let (ll, rl) = (syms[l].len, syms[r].len);
            // Stale: one side has merged since this pair was queued.
            if ll == 0 || rl == 0 || ll + rl != bg.size {
                continue;
            }
            syms[l].len += rl;
            syms[r].len = 0;
            let rn = syms[r].next;
            syms[l].next = rn;
            if rn != NONE {
                syms[rn as usize].prev = bg.left;
            }
            self.push_bigram(text, syms, syms[l].prev, bg.left, heap);
            self.push_bigram(text, syms, bg.left, rn, heap);
        }
        let mut i = 0u32;
        while i != NONE {
            let s = syms[i as usize];
            let piece = &text[s.start as usize..(s.start + s.len) as usize];
            if let Some(&id) = self.mergeable.get(piece) {
                out.push(id);
            } else if self.has_byte_pieces && piece.bytes().all(|b| self.byte_ids[b as usize] != NONE) {
                out.extend(piece.bytes().map(|b| self.byte_ids[b as usize]));
            } else if let Some(u) = self.unk {
                out.push(u);
            } else {
                return Err(Error::type_error(format!(
                    "cannot encode {}: it is no piece, and the vocabulary has neither byte pieces for it nor an unknown token",
                    quote(piece)
                )));
            }
            i = s.next;
        }
        Ok(())
    }

    /// Appends the bytes token `id` decodes to (no range check).
    fn append_bytes(&self, id: u32, out: &mut Vec<u8>) {
        let p = &*self.pieces[id as usize];
        match self.types[id as usize] as i32 {
            CONTROL | UNKNOWN => {}
            USER_DEFINED => out.extend_from_slice(p.as_bytes()),
            BYTE => out.push(parse_byte_piece(p).unwrap_or(0)),
            _ => {
                let mut last = 0;
                for (i, _) in p.match_indices(SPACE) {
                    out.extend_from_slice(&p.as_bytes()[last..i]);
                    out.push(b' ');
                    last = i + SPACE.len_utf8();
                }
                out.extend_from_slice(&p.as_bytes()[last..]);
            }
        }
    }

    /// Decodes `ids` to text (see [`DecodeState`] for the options).
    pub fn decode(&self, ids: &[u32], strip_leading_space: bool, lossy: bool) -> Result<String> {
        let mut st = DecodeState::new(self, strip_leading_space, lossy);
        let mut out = String::new();
        for &id in ids {
            st.push(self, id, &mut out)?;
        }
        st.flush(&mut out)?;
        Ok(out)
    }
}

/// Incremental decoding: bytes of a character split across tokens are held
/// back until the character is complete.
#[derive(Debug, Clone)]
pub struct DecodeState {
    /// Drop the dummy-prefix space of the first token that yields bytes.
    strip: bool,
    stream: Utf8Stream,
}

impl DecodeState {
    /// `strip_leading_space`: the ids start a text, so the first space (the
    /// dummy prefix) is dropped when the model adds one. `lossy`: invalid
    /// UTF-8 becomes U+FFFD instead of an error.
    pub fn new(spm: &Spm, strip_leading_space: bool, lossy: bool) -> DecodeState {
        DecodeState { strip: strip_leading_space && spm.add_space_prefix, stream: Utf8Stream::new(lossy) }
    }

    /// Decodes one more id, appending the complete characters to `out`.
    pub fn push(&mut self, spm: &Spm, id: u32, out: &mut String) -> Result<()> {
        spm.check_id(id)?;
        let pending = &mut self.stream.pending;
        let start = pending.len();
        spm.append_bytes(id, pending);
        if self.strip && pending.len() > start {
            self.strip = false;
            if pending[start] == b' ' {
                pending.remove(start);
            }
        }
        self.stream.drain_token(id, &spm.pieces[id as usize], out)
    }

    /// Ends the stream: a held incomplete character becomes U+FFFD in lossy
    /// mode and an error otherwise.
    pub fn flush(&mut self, out: &mut String) -> Result<()> {
        self.stream.flush(out)
    }
}

// ---------------------------------------------------------------------------
// Wasm bindings

mod bindings {
    use super::{DecodeState, Options, Spm};
    use crate::js_err;
    use std::rc::Rc;
    use wasm_bindgen::prelude::*;

    /// A SentencePiece BPE tokenizer held in Wasm memory.
    #[wasm_bindgen(js_name = SpmTokenizer)]
    pub struct WasmSpmTokenizer {
        inner: Rc<Spm>,
    }

    #[wasm_bindgen(js_class = SpmTokenizer)]
    impl WasmSpmTokenizer {
        /// From parallel lists of pieces, scores and types (GGUF
        /// `tokenizer.ggml.{tokens,scores,token_type}`). `unkId` < 0: none.
        #[wasm_bindgen(js_name = fromVocab)]
        pub fn from_vocab(
            pieces: Vec<String>,
            scores: &[f32],
            types: &[i32],
            unk_id: i32,
            add_space_prefix: bool,
        ) -> Result<WasmSpmTokenizer, JsValue> {
            let opts = Options { unk_id: u32::try_from(unk_id).ok(), add_space_prefix };
            let spm = Spm::new(pieces, scores, types, opts).map_err(js_err)?;
            Ok(WasmSpmTokenizer { inner: Rc::new(spm) })
        }

        #[wasm_bindgen(getter, js_name = vocabSize)]
        pub fn vocab_size(&self) -> usize {
            self.inner.vocab_size()
        }

        /// Ids of `text`, no BOS/EOS.
        pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, JsValue> {
            self.inner.encode(text, parse_special).map_err(js_err)
        }

        pub fn decode(&self, ids: &[u32], strip_leading_space: bool, lossy: bool) -> Result<String, JsValue> {
            self.inner.decode(ids, strip_leading_space, lossy).map_err(js_err)
        }

        pub fn decoder(&self, strip_leading_space: bool, lossy: bool) -> WasmSpmDecoder {
            WasmSpmDecoder {
                state: DecodeState::new(&self.inner, strip_leading_space, lossy),
                spm: self.inner.clone(),
            }
        }
    }

    /// Incremental decoder of an `SpmTokenizer`.
    #[wasm_bindgen(js_name = SpmDecoder)]
    pub struct WasmSpmDecoder {
        spm: Rc<Spm>,
        state: DecodeState,
    }

    #[wasm_bindgen(js_class = SpmDecoder)]
    impl WasmSpmDecoder {
        pub fn push(&mut self, id: u32) -> Result<String, JsValue> {
            let mut out = String::new();
            self.state.push(&self.spm, id, &mut out).map_err(js_err)?;
            Ok(out)
        }

        pub fn flush(&mut self) -> Result<String, JsValue> {
            let mut out = String::new();
            self.state.flush(&mut out).map_err(js_err)?;
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy vocabulary: unk, bos, eos, 256 bytes, then `extra` pieces
    /// (score = minus their index).
    fn toy(extra: &[(&str, i32)], add_space_prefix: bool) -> Spm {
        let mut pieces = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
        let mut types = vec![UNKNOWN, CONTROL, CONTROL];
        for b in 0..256 {
            pieces.push(format!("<0x{:02X}>", b));
            types.push(BYTE);
        }
        for (p, t) in extra {
            pieces.push(p.to_string());
            types.push(*t);
        }
        let scores: Vec<f32> = (0..pieces.len()).map(|i| if i < 259 { 0.0 } else { -(i as f32) }).collect();
        Spm::new(pieces, &scores, &types, Options { unk_id: Some(0), add_space_prefix }).unwrap()
    }

    fn pieces_of(s: &Spm, ids: &[u32]) -> Vec<String> {
        ids.iter().map(|&i| s.piece(i).unwrap().to_string()).collect()
    }

    #[test]
    fn merges_by_score_and_falls_back_to_bytes() {
        let s = toy(
            &[("▁", NORMAL), ("a", NORMAL), ("b", NORMAL), ("ab", NORMAL), ("▁ab", NORMAL), ("▁a", NORMAL)],
            true,
        );
        let ids = s.encode("ab ab", false).unwrap();
        assert_eq!(pieces_of(&s, &ids), ["▁ab", "▁ab"]);
        let ids = s.encode("é", false).unwrap();
        assert_eq!(pieces_of(&s, &ids), ["▁", "<0xC3>", "<0xA9>"]);
        assert_eq!(s.decode(&ids, true, false).unwrap(), "é");
    }

    #[test]
    fn ties_merge_leftmost() {
        // "aaa": pairs (0,1) and (1,2) both "aa" with the same score.
        let s = toy(&[("a", NORMAL), ("aa", NORMAL)], false);
        let ids = s.encode("aaa", false).unwrap();
        assert_eq!(pieces_of(&s, &ids), ["aa", "a"]);
    }

    #[test]
    fn control_pieces_are_text_unless_parse_special() {
        let s = toy(&[("<", NORMAL), ("s", NORMAL), (">", NORMAL), ("<s", NORMAL)], false);
        let ids = s.encode("<s>", false).unwrap();
        assert_eq!(pieces_of(&s, &ids), ["<s", ">"]);
        assert_eq!(s.encode("<s>", true).unwrap(), [1]);
    }

    #[test]
    fn user_defined_pieces_split_first() {
        let s = toy(&[("▁", NORMAL), ("x", NORMAL), ("<tag>", USER_DEFINED)], true);
        let ids = s.encode("x<tag>x", false).unwrap();
        // llama.cpp: the fragment after a special piece gets the dummy prefix again.
        assert_eq!(pieces_of(&s, &ids), ["▁", "x", "<tag>", "▁", "x"]);
        assert_eq!(s.decode(&ids, true, false).unwrap(), "x<tag> x");
    }

    #[test]
    fn decoder_streams_split_characters() {
        let s = toy(&[("▁", NORMAL)], true);
        let ids = s.encode("日本 🙂", false).unwrap();
        let all = s.decode(&ids, true, false).unwrap();
        assert_eq!(all, "日本 🙂");
        let mut st = DecodeState::new(&s, true, false);
        let mut parts = Vec::new();
        for &id in &ids {
            let mut o = String::new();
            st.push(&s, id, &mut o).unwrap();
            parts.push(o);
        }
        let mut o = String::new();
        st.flush(&mut o).unwrap();
        parts.push(o);
        assert_eq!(parts.concat(), all);
        assert!(parts.iter().filter(|p| p.is_empty()).count() > 4);
    }

    #[test]
    fn invalid_utf8() {
        let s = toy(&[("▁", NORMAL), ("a", NORMAL)], true);
        let b = |x: u32| 3 + x;
        let e = s.decode(&[b(0xFF), 260], true, false).unwrap_err();
        assert!(e.message.contains("not valid UTF-8"), "{}", e.message);
        assert_eq!(s.decode(&[b(0xE6), 260], true, true).unwrap(), "\u{FFFD}a");
        assert_eq!(s.decode(&[b(0xE6), b(0x97)], true, true).unwrap(), "\u{FFFD}");
        let e = s.decode(&[b(0xE6)], true, false).unwrap_err();
        assert!(e.message.contains("end inside a UTF-8 character"), "{}", e.message);
        let e = s.decode(&[9999], true, false).unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Range);
    }

    #[test]
    fn bad_vocabularies() {
        let p = || vec!["a".to_string(), "b".to_string()];
        let o = Options { unk_id: None, add_space_prefix: true };
        assert!(Spm::new(p(), &[0.0], &[1, 1], o).unwrap_err().message.contains("1 scores"));
        assert!(Spm::new(p(), &[0.0, 0.0], &[1], o).unwrap_err().message.contains("1 token types"));
        assert!(Spm::new(p(), &[0.0, 0.0], &[1, 9], o).unwrap_err().message.contains("unknown type 9"));
        assert!(Spm::new(p(), &[0.0, 0.0], &[1, 6], o).unwrap_err().message.contains("<0xNN>"));
        let o2 = Options { unk_id: Some(5), ..o };
        assert!(Spm::new(p(), &[0.0, 0.0], &[1, 1], o2).unwrap_err().message.contains("out of range"));
        // No byte pieces, no unknown: a character without a piece cannot be encoded.
        let s = Spm::new(p(), &[0.0, 0.0], &[1, 1], o).unwrap();
        assert!(s.encode("c", false).is_err());
    }

    #[test]
    fn pieces_across_words_turn_off_word_splitting() {
        let s = toy(
            &[("▁", NORMAL), ("a", NORMAL), ("b", NORMAL), ("a▁", NORMAL), ("a▁b", NORMAL), ("▁a", NORMAL)],
            true,
        );
        assert!(!s.split_words);
        let ids = s.encode("a b", false).unwrap();
        assert_eq!(pieces_of(&s, &ids), ["▁", "a▁b"]);
        let s = toy(&[("▁", NORMAL), ("▁▁", NORMAL), ("a", NORMAL)], true);
        assert!(s.split_words);
        let ids = s.encode("a  a", false).unwrap();
        assert_eq!(pieces_of(&s, &ids), ["▁", "a", "▁▁", "a"]);
    }

    fn shared(rel: &str) -> Option<Vec<u8>> {
        let dir = std::env::var("ALISA_SHARED").unwrap_or_else(|_| "../../shared".into());
        std::fs::read(format!("{}/{}", dir, rel)).ok()
    }

    /// Word-by-word encoding (with its cache) gives the ids of BPE over the
    /// whole text, on Northanger Abbey with the Austen vocabulary.
    #[test]
    fn word_splitting_matches_whole_text_bpe() {
        let (Some(model), Some(text)) =
            (shared("models/austen-5m-hf/tokenizer.model"), shared("data/northanger-abbey.txt"))
        else {
            eprintln!("skipping: the shared Austen model or text is absent");
            return;
        };
        let s = Spm::from_sentencepiece(crate::sentencepiece_model::parse(&model).unwrap()).unwrap();
        assert!(s.split_words);
        let mut whole = s.clone();
        whole.split_words = false;
        let text = String::from_utf8(text).unwrap();
        let part: String = text.lines().take(150).collect::<Vec<_>>().join("\n");
        let a = s.encode(&part, false).unwrap();
        assert_eq!(a, whole.encode(&part, false).unwrap());
        assert_eq!(s.decode(&a, true, false).unwrap(), part);
    }

    /// The shared Austen tokenizer.model against the shared fixture.
    #[test]
    fn austen_fixture() {
        let dir = std::env::var("ALISA_SHARED").unwrap_or_else(|_| "../../shared".into());
        let (Ok(model), Ok(fixture)) = (
            std::fs::read(format!("{}/models/austen-5m-hf/tokenizer.model", dir)),
            std::fs::read_to_string(format!("{}/fixtures/tokenizer-austen.json", dir)),
        ) else {
            eprintln!("skipping: the shared Austen model or fixture is absent");
            return;
        };
        let s = Spm::from_sentencepiece(crate::sentencepiece_model::parse(&model).unwrap()).unwrap();
        let cases: serde_json::Value = serde_json::from_str(&fixture).unwrap();
        let cases = cases.as_array().unwrap();
        assert!(cases.len() >= 10);
        for c in cases {
            let text = c["text"].as_str().unwrap();
            let want: Vec<u32> =
                c["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            let got = s.encode(text, false).unwrap();
            assert_eq!(got, want, "{:?}", text);
            assert_eq!(s.decode(&got, true, false).unwrap(), text);
        }
    }
}
