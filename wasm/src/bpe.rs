//! Byte-level BPE tokenization for GPT-2-style vocabularies (GPT-2, Llama 3,
//! Qwen2, SmolLM: GGUF `tokenizer.ggml.model == "gpt2"`, or a Hugging Face
//! `tokenizer.json` of model type BPE with a ByteLevel pre-tokenizer),
//! following llama.cpp's `llm_tokenizer_bpe` and Hugging Face `tokenizers`:
//!
//! - Encoding: added tokens are cut out of the text first: user-defined ones
//!   always, control ones with `parse_special`; at each position the longest
//!   one that matches wins, scanning left to right (the leftmost-longest
//!   match of Hugging Face's added-vocabulary splitter). Each remaining
//!   fragment is split into pieces by the model's pre-tokenizer ([`Pre`]):
//!   hand-written state machines that give the matches of the regular
//!   expressions listed there (no regex engine). Each piece's UTF-8 bytes
//!   become the tokens of GPT-2's byte-to-unicode characters, and the
//!   adjacent pair whose merge has the lowest rank is merged (ties: the
//!   leftmost) until no pair has a merge, with a priority queue
//!   (O(n log n)). With `ignore_merges` (Llama 3) a piece that is a whole
//!   token is that token. Pieces are cached with their ids.
//! - Decoding: normal tokens map their characters back to bytes (a token
//!   with a character outside the byte map gives its own UTF-8, as Hugging
//!   Face's ByteLevel decoder does), user-defined tokens are their text,
//!   control and unknown tokens are nothing (llama.cpp's `token_to_piece`
//!   without `special`). The bytes must be UTF-8: invalid sequences are an
//!   error, or U+FFFD in lossy mode (maximal subparts, as `TextDecoder`).
//! - [`DecodeState`] decodes one id at a time and never returns half a
//!   character; its output concatenated equals [`Bpe::decode`] of all ids.
//!
//! - Metaspace ([`Pre::Metaspace`]): Hugging Face's SentencePiece-style BPE
//!   with byte fallback (`tokenizer.json` of Gemma, Llama 2, Phi-3): each
//!   fragment's spaces become `▁` (and, with `add_prefix_space`, a `▁`
//!   starts it: the `Prepend` normalizer), the whole fragment is one piece,
//!   its characters are the initial tokens (a character without one becomes
//!   its `<0xNN>` byte tokens, or the unknown token, repeated unknowns fused),
//!   and the merges apply by rank as above. Decoding turns `▁` back into
//!   spaces and byte tokens into their bytes, and with `add_prefix_space`
//!   drops the first space of a text (the `Strip` decoder).
//!
//! Character classes: `\p{L}`, `\p{N}` and `\p{P}` come from a table made
//! from V8's regular expressions (`tests/fixtures/tokenizer/make_unicode_tables.ts`),
//! so they agree with the JavaScript reference tokenizers the tests compare
//! against; `\s` is Unicode White_Space (`char::is_whitespace`), as in
//! Hugging Face `tokenizers` and llama.cpp. (JavaScript's `\s` differs on two
//! characters: it has U+FEFF and lacks U+0085.)

use crate::error::{Error, Result};
use crate::tokenizer::{BYTE, CONTROL, NORMAL, UNDEFINED, UNKNOWN, UNUSED, USER_DEFINED};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use crate::text::{quote, Fx, Utf8Stream};

const NONE: u32 = u32::MAX;
const SPACE: char = '\u{2581}';


// ---------------------------------------------------------------------------
// GPT-2's byte <-> unicode mapping

/// GPT-2's `bytes_to_unicode`: the printable Latin-1 bytes (`!`..`~`,
/// `¡`..`¬`, `®`..`ÿ`) stand for themselves, the other 68 for U+0100..U+0143
/// in byte order (space is `Ġ`, newline `Ċ`).
const fn byte_chars() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut n = 0u16;
    let mut b = 0usize;
    while b < 256 {
        let printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        t[b] = if printable {
            b as u16
        } else {
            n += 1;
            0xFF + n
        };
        b += 1;
    }
    t
}

static BYTE_CHAR: [u16; 256] = byte_chars();

/// The inverse: the byte that each of U+0000..U+0143 stands for, or -1.
const fn char_bytes() -> [i16; 0x144] {
    let fwd = byte_chars();
    let mut t = [-1i16; 0x144];
    let mut b = 0;
    while b < 256 {
        t[fwd[b] as usize] = b as i16;
        b += 1;
    }
    t
}

static CHAR_BYTE: [i16; 0x144] = char_bytes();

/// The character GPT-2's byte-level alphabet uses for byte `b`.
pub fn byte_to_char(b: u8) -> char {
    // All table values are below U+0144.
    char::from_u32(BYTE_CHAR[b as usize] as u32).unwrap()
}

/// The byte that `c` stands for in GPT-2's byte-level alphabet.
pub fn char_to_byte(c: char) -> Option<u8> {
    let i = c as usize;
    if i < CHAR_BYTE.len() && CHAR_BYTE[i] >= 0 {
        Some(CHAR_BYTE[i] as u8)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// Character classes

const CAT_LETTER: u32 = 1;
const CAT_NUMBER: u32 = 2;
const CAT_PUNCT: u32 = 3;

/// What the pre-tokenizers tell apart: `\p{L}`, `\p{N}`, `\s`, the rest.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum K {
    Letter,
    Number,
    Space,
    Other,
}

const fn ascii_kinds() -> [K; 128] {
    let mut t = [K::Other; 128];
    let mut c = 0;
    while c < 128 {
        t[c] = match c as u8 {
            b'a'..=b'z' | b'A'..=b'Z' => K::Letter,
            b'0'..=b'9' => K::Number,
            b'\t'..=b'\r' | b' ' => K::Space,
            _ => K::Other,
        };
        c += 1;
    }
    t
}

static ASCII_KIND: [K; 128] = ascii_kinds();

/// General category of `c`: `CAT_LETTER`, `CAT_NUMBER`, `CAT_PUNCT` or 0
/// (binary search in the generated table of category runs).
#[inline]
fn category(c: u32) -> u32 {
    let i = CATEGORY_RUNS.partition_point(|&r| (r >> 2) <= c);
    // CATEGORY_RUNS[0] starts at U+0000, so i >= 1.
    CATEGORY_RUNS[i - 1] & 3
}

#[inline(always)]
fn kind(c: char) -> K {
    let u = c as u32;
    if u < 128 {
        return ASCII_KIND[u as usize];
    }
    kind_non_ascii(c)
}

#[inline(never)]
fn kind_non_ascii(c: char) -> K {
    let u = c as u32;
    if c.is_whitespace() {
        return K::Space;
    }
    match category(u) {
        CAT_LETTER => K::Letter,
        CAT_NUMBER => K::Number,
        _ => K::Other,
    }
}

/// `[\p{P}\$\+<=>\^~\|]`: punctuation, and the ASCII symbols but backquote.
#[inline]
fn is_punct_like(c: char) -> bool {
    let u = c as u32;
    if u < 128 {
        (c.is_ascii_punctuation()) && c != '`'
    } else {
        category(u) == CAT_PUNCT
    }
}

/// The character at byte `i` of `s` (a char boundary below `s.len()`) and
/// its length in bytes.
#[inline(always)]
fn at(s: &str, i: usize) -> (char, usize) {
    let b = s.as_bytes()[i];
    if b < 0x80 {
        return (b as char, 1);
    }
    at_non_ascii(s, i)
}

#[inline(never)]
fn at_non_ascii(s: &str, i: usize) -> (char, usize) {
    // `i` is a char boundary below the end, so there is a char.
    let c = s[i..].chars().next().unwrap();
    (c, c.len_utf8())
}

/// End of the run of characters of kind `k` starting at `i`.
#[inline]
fn run_of(s: &str, mut i: usize, k: K) -> usize {
    while i < s.len() {
        let (c, n) = at(s, i);
        if kind(c) != k {
            break;
        }
        i += n;
    }
    i
}

/// End of the run of characters for which `f` is `want`.
#[inline]
fn run_while(s: &str, mut i: usize, want: bool, f: impl Fn(char) -> bool) -> usize {
    while i < s.len() {
        let (c, n) = at(s, i);
        if f(c) != want {
            break;
        }
        i += n;
    }
    i
}

/// `'s|'t|'re|'ve|'m|'ll|'d` right after an apostrophe at `i - 1`: the end
/// of the match. `fold`: ASCII case-insensitive, as `(?i:...)` in Llama 3's
/// pattern is read by llama.cpp and transformers.js.
#[inline]
fn contraction(b: &[u8], i: usize, fold: bool) -> Option<usize> {
    let low = |k: usize| -> u8 {
        let x = b.get(k).copied().unwrap_or(0);
        if fold {
            x.to_ascii_lowercase()
        } else {
            x
        }
    };
    match low(i) {
        b's' | b't' | b'm' | b'd' => Some(i + 1),
        b'r' | b'v' if low(i + 1) == b'e' => Some(i + 2),
        b'l' if low(i + 1) == b'l' => Some(i + 2),
        _ => None,
    }
}

/// `\s+(?!\S)|\s+` at the whitespace character `[i, j)`: the whole run when
/// it ends the text, else all of it but its last character (which goes with
/// the next piece), or the single character.
#[inline]
fn space_end(s: &str, i: usize, j: usize) -> usize {
    let mut last = i;
    let mut e = j;
    while e < s.len() {
        let (c, n) = at(s, e);
        if kind(c) != K::Space {
            break;
        }
        last = e;
        e += n;
    }
    if e == s.len() || last == i {
        e
    } else {
        last
    }
}

// ---------------------------------------------------------------------------
// Pre-tokenizers

/// The pre-tokenizer: how text is split into pieces before BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pre {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    Gpt2,
    /// Llama 3 (and cl100k): `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    Llama3,
    /// Qwen2: Llama 3's pattern with `\p{N}` (single digits) for `\p{N}{1,3}`.
    Qwen2,
    /// SmolLM: every `\p{N}` on its own, then GPT-2's pattern on the rest.
    Smollm,
    /// llama.cpp's default: `[\p{P}\$\+<=>\^~\|]+`, then GPT-2's pattern,
    /// then `\p{N}+`, then `[0-9][0-9][0-9]`, each splitting the pieces of
    /// the one before (text between matches stays a piece).
    Default,
    /// Not byte-level: Hugging Face's SentencePiece-style BPE with byte
    /// fallback (spaces as `▁`, no splitting; see the module doc).
    Metaspace,
}

/// The names [`Pre::from_name`] documents in its error (llama.cpp's; not
/// `metaspace`, which only `tokenizer.json` reading uses).
pub const PRE_NAMES: &str = "\"gpt2\", \"llama-bpe\", \"qwen2\", \"smollm\", \"default\"";

impl Pre {
    /// From a GGUF `tokenizer.ggml.pre` value (llama.cpp's names; a few
    /// aliases llama.cpp treats the same way are accepted too).
    pub fn from_name(name: &str) -> Result<Pre> {
        Ok(match name {
            "gpt2" | "gpt-2" | "phi-2" | "mpt" | "olmo" => Pre::Gpt2,
            "llama-bpe" | "llama3" | "llama-v3" => Pre::Llama3,
            "qwen2" | "deepseek-r1-qwen" => Pre::Qwen2,
            "smollm" => Pre::Smollm,
            "default" => Pre::Default,
            "metaspace" => Pre::Metaspace,
            _ => {
                return Err(Error::type_error(format!(
                    "unknown pre-tokenizer {} (supported: {})",
                    quote(name),
                    PRE_NAMES
                )))
            }
        })
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Pre::Gpt2 => "gpt2",
            Pre::Llama3 => "llama-bpe",
            Pre::Qwen2 => "qwen2",
            Pre::Smollm => "smollm",
            Pre::Default => "default",
            Pre::Metaspace => "metaspace",
        }
    }

    fn rules(self) -> &'static [Rule] {
        match self {
            Pre::Gpt2 => &[Rule::Gpt2],
            Pre::Llama3 => &[Rule::Llama3],
            Pre::Qwen2 => &[Rule::Qwen2],
            Pre::Smollm => &[Rule::EachNumber, Rule::Gpt2],
            Pre::Default => &[Rule::PunctRuns, Rule::Gpt2, Rule::NumberRuns, Rule::AsciiTriples],
            Pre::Metaspace => &[],
        }
    }

    /// The pieces of `text`, as slices of it (for tests and diagnostics).
    pub fn split(self, text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let _ = split(self.rules(), text, &mut |p| {
            out.push(p);
            Ok(())
        });
        out
    }
}

/// One splitting pattern. Each gives the pieces of the text it is applied to
/// as a regex split that keeps both the matches and the text between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Gpt2,
    Llama3,
    Qwen2,
    /// `\p{N}`
    EachNumber,
    /// `\p{N}+`
    NumberRuns,
    /// `[\p{P}\$\+<=>\^~\|]+`
    PunctRuns,
    /// `[0-9][0-9][0-9]`
    AsciiTriples,
}

impl Rule {
    /// End of the piece that starts at `i` (a char boundary below
    /// `s.len()`); always past `i`.
    #[inline]
    fn end(self, s: &str, i: usize) -> usize {
        match self {
            Rule::Gpt2 => gpt2_end(s, i),
            Rule::Llama3 => llama3_end(s, i, 3),
            Rule::Qwen2 => llama3_end(s, i, 1),
            Rule::EachNumber => {
                let (c, n) = at(s, i);
                if kind(c) == K::Number {
                    i + n
                } else {
                    run_while(s, i + n, false, |c| kind(c) == K::Number)
                }
            }
            Rule::NumberRuns => {
                let (c, n) = at(s, i);
                let num = kind(c) == K::Number;
                run_while(s, i + n, num, |c| kind(c) == K::Number)
            }
            Rule::PunctRuns => {
                let (c, n) = at(s, i);
                let p = is_punct_like(c);
                run_while(s, i + n, p, is_punct_like)
            }
            Rule::AsciiTriples => {
                let b = s.as_bytes();
                let triple = |p: usize| p + 3 <= b.len() && b[p..p + 3].iter().all(u8::is_ascii_digit);
                if triple(i) {
                    return i + 3;
                }
                // ASCII digits are never inside a multi-byte character, so
                // the next match starts at a char boundary.
                (i + 1..b.len()).find(|&p| triple(p)).unwrap_or(b.len())
            }
        }
    }
}

/// GPT-2's pattern at `i`.
#[inline]
fn gpt2_end(s: &str, i: usize) -> usize {
    let (c, n) = at(s, i);
    let j = i + n;
    if c == '\'' {
        if let Some(e) = contraction(s.as_bytes(), j, false) {
            return e;
        }
    }
    // ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`, with the space.
    if c == ' ' && j < s.len() {
        let (d, m) = at(s, j);
        let kd = kind(d);
        if kd != K::Space {
            return run_of(s, j + m, kd);
        }
    }
    let k = kind(c);
    if k != K::Space {
        return run_of(s, j, k);
    }
    space_end(s, i, j)
}

/// Llama 3's pattern at `i`, with `\p{N}{1,max_digits}`.
#[inline]
fn llama3_end(s: &str, i: usize, max_digits: usize) -> usize {
    let len = s.len();
    let (c, n) = at(s, i);
    let j = i + n;
    if c == '\'' {
        if let Some(e) = contraction(s.as_bytes(), j, true) {
            return e;
        }
    }
    let k = kind(c);
    match k {
        // `[^\r\n\p{L}\p{N}]?\p{L}+` without the optional character.
        K::Letter => return run_of(s, j, K::Letter),
        K::Number => {
            let mut e = j;
            let mut count = 1;
            while count < max_digits && e < len {
                let (d, m) = at(s, e);
                if kind(d) != K::Number {
                    break;
                }
                e += m;
                count += 1;
            }
            return e;
        }
        _ => {}
    }
    // `[^\r\n\p{L}\p{N}]?\p{L}+` with it: any space or other character but
    // CR and LF, before letters.
    let next = if j < len { Some(at(s, j)) } else { None };
    if c != '\r' && c != '\n' {
        if let Some((d, m)) = next {
            if kind(d) == K::Letter {
                return run_of(s, j + m, K::Letter);
            }
        }
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    let others = if k == K::Other {
        Some(j)
    } else {
        match next {
            Some((d, m)) if c == ' ' && kind(d) == K::Other => Some(j + m),
            _ => None,
        }
    };
    if let Some(p) = others {
        let e = run_of(s, p, K::Other);
        let b = s.as_bytes();
        let mut f = e;
        while f < len && (b[f] == b'\r' || b[f] == b'\n') {
            f += 1;
        }
        return f;
    }
    // Whitespace. `\s*[\r\n]+`: through the last CR or LF of the run.
    let mut last = i;
    let mut e = j;
    let mut nl = if c == '\r' || c == '\n' { j } else { 0 };
    while e < len {
        let (d, m) = at(s, e);
        if kind(d) != K::Space {
            break;
        }
        if d == '\r' || d == '\n' {
            nl = e + m;
        }
        last = e;
        e += m;
    }
    if nl > 0 {
        return nl;
    }
    // `\s+(?!\S)|\s+`
    if e == len || last == i {
        e
    } else {
        last
    }
}

/// Applies `rules` in turn: each splits every piece of the one before; the
/// last one's pieces go to `f`.
fn split<'t>(rules: &[Rule], s: &'t str, f: &mut dyn FnMut(&'t str) -> Result<()>) -> Result<()> {
    let Some((&r, rest)) = rules.split_first() else { return f(s) };
    let mut i = 0;
    while i < s.len() {
        let e = r.end(s, i);
        if rest.is_empty() {
            f(&s[i..e])?;
        } else {
            split(rest, &s[i..e], f)?;
        }
        i = e;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The tokenizer

/// Settings that are not part of the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub pre: Pre,
    /// A piece that is a whole token is that token, without merging
    /// (Hugging Face `ignore_merges`; llama.cpp sets it for Llama 3).
    pub ignore_merges: bool,
    /// Put a space before each fragment that does not start with one
    /// (Hugging Face ByteLevel `add_prefix_space`); with
    /// [`Pre::Metaspace`], a `▁` before every fragment (the `Prepend`
    /// normalizer), dropped again when decoding.
    pub add_prefix_space: bool,
}

/// How the merges are given to [`Bpe::new`].
#[derive(Debug, Clone, Copy)]
pub enum Merges<'a> {
    /// GGUF `tokenizer.ggml.merges` and older `tokenizer.json`: `"a b"`.
    Joined(&'a [String]),
    /// Newer `tokenizer.json`: `["a", "b"]` pairs, flattened (left, right, ...).
    Pairs(&'a [String]),
}

impl Merges<'_> {
    fn len(&self) -> usize {
        match self {
            Merges::Joined(m) => m.len(),
            Merges::Pairs(m) => m.len() / 2,
        }
    }

    /// Merge `k` as (left, right), or None when it has no space to split at.
    fn get(&self, k: usize) -> Option<(&str, &str)> {
        match self {
            Merges::Joined(m) => {
                let s = m[k].as_str();
                // As llama.cpp: at the first space after the first byte, so
                // a merge may start with a space.
                let p = s.bytes().skip(1).position(|b| b == b' ')? + 1;
                Some((&s[..p], &s[p + 1..]))
            }
            Merges::Pairs(m) => Some((m[2 * k].as_str(), m[2 * k + 1].as_str())),
        }
    }

    fn text(&self, k: usize) -> String {
        match self {
            Merges::Joined(m) => quote(&m[k]),
            Merges::Pairs(m) => format!("[{}, {}]", quote(&m[2 * k]), quote(&m[2 * k + 1])),
        }
    }
}

/// A byte-level BPE vocabulary ready to encode and decode.
#[derive(Debug, Clone)]
pub struct Bpe {
    tokens: Vec<Box<str>>,
    types: Vec<u8>,
    /// Token text to id: normal tokens first (the first of equal texts
    /// wins), then added tokens whose text no normal token has.
    vocab: HashMap<Box<str>, u32, Fx>,
    /// (left id << 32 | right id) -> (rank, merged id).
    merges: HashMap<u64, (u32, u32), Fx>,
    /// Token of each byte's character, or `NONE`; with [`Pre::Metaspace`],
    /// the `<0xNN>` token of each byte (byte fallback).
    byte_ids: [u32; 256],
    /// The unknown token ([`Pre::Metaspace`]: characters without a token
    /// or byte tokens), or `NONE`.
    unk: u32,
    /// User-defined, control and unknown tokens by first byte:
    /// `specials[first[b]..first[b + 1]]` start with byte `b` (by id).
    specials: Vec<u32>,
    first: Box<[u32; 257]>,
    has_user_defined: bool,
    opts: Options,
    scratch: RefCell<Scratch>,
}

/// Reusable buffers of `encode`, with a cache of the ids of the pieces seen
/// so far (prose repeats most words).
#[derive(Default)]
struct Scratch {
    syms: Vec<Sym>,
    heap: BinaryHeap<Pair>,
    word: String,
    fragment: String,
    cache: HashMap<Box<str>, Box<[u32]>, Fx>,
}

impl Clone for Scratch {
    fn clone(&self) -> Self {
        Scratch::default()
    }
}

impl core::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Scratch({} cached pieces)", self.cache.len())
    }
}

/// Pieces up to this many bytes are cached.
const CACHE_MAX_WORD: usize = 64;
/// The cache is emptied when it holds this many pieces.
const CACHE_MAX_ENTRIES: usize = 1 << 16;

#[derive(Clone, Copy)]
struct Sym {
    id: u32,
    prev: u32,
    next: u32,
}

/// A candidate merge of the symbol at `key & 0xFFFF_FFFF` with the one after
/// it; `key >> 32` is the rank.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Pair {
    key: u64,
    left: u32,
    right: u32,
    merged: u32,
}

impl Ord for Pair {
    /// Lowest rank first, then the leftmost (BinaryHeap pops the greatest).
    fn cmp(&self, o: &Self) -> Ordering {
        o.key.cmp(&self.key).then_with(|| (o.left, o.right, o.merged).cmp(&(self.left, self.right, self.merged)))
    }
}

impl PartialOrd for Pair {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

enum Fragment {
    Raw(usize, usize),
    Token(u32),
}

impl Bpe {
    /// Builds a tokenizer from the token texts (byte-level: `Ġthe`), their
    /// types, and the merges in rank order. Every merge's two sides and
    /// their concatenation must be tokens.
    pub fn new(tokens: Vec<String>, types: &[i32], merges: Merges, opts: Options) -> Result<Bpe> {
        let n = tokens.len();
        if n == 0 {
            return Err(Error::type_error("the vocabulary has no tokens"));
        }
        if n >= NONE as usize {
            return Err(Error::range_error(format!("the vocabulary has too many tokens ({})", n)));
        }
        if types.len() != n {
            return Err(Error::range_error(format!("the vocabulary has {} tokens but {} token types", n, types.len())));
        }
        if let Merges::Pairs(m) = merges {
            if m.len() % 2 != 0 {
                return Err(Error::range_error(format!("the merge pairs have an odd number of sides ({})", m.len())));
            }
        }
        if merges.len() >= NONE as usize {
            return Err(Error::range_error(format!("there are too many merges ({})", merges.len())));
        }
        let mut vocab: HashMap<Box<str>, u32, Fx> = HashMap::default();
        vocab.reserve(n);
        let mut specials = Vec::new();
        let mut has_user_defined = false;
        let mut out_types = Vec::with_capacity(n);
        for (i, t) in types.iter().enumerate() {
            let p = tokens[i].as_str();
            match *t {
                UNDEFINED | NORMAL | UNUSED | BYTE => {
                    if !p.is_empty() {
                        vocab.entry(p.into()).or_insert(i as u32);
                    }
                }
                USER_DEFINED | CONTROL | UNKNOWN => {
                    if !p.is_empty() {
                        specials.push(i as u32);
                        has_user_defined |= *t == USER_DEFINED;
                    }
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
            out_types.push(*t as u8);
        }
        for &id in &specials {
            vocab.entry(tokens[id as usize].as_str().into()).or_insert(id);
        }
        // Bucketed by first byte (a counting sort, so by id within each).
        let mut first = Box::new([0u32; 257]);
        for &id in &specials {
            first[tokens[id as usize].as_bytes()[0] as usize + 1] += 1;
        }
        for b in 0..256 {
            first[b + 1] += first[b];
        }
        let mut next = first.clone();
        let mut bucketed = vec![0u32; specials.len()];
        for &id in &specials {
            let slot = &mut next[tokens[id as usize].as_bytes()[0] as usize];
            bucketed[*slot as usize] = id;
            *slot += 1;
        }
        let specials = bucketed;
        let mut table: HashMap<u64, (u32, u32), Fx> = HashMap::default();
        table.reserve(merges.len());
        let mut joined = String::new();
        for k in 0..merges.len() {
            let Some((l, r)) = merges.get(k) else {
                return Err(Error::type_error(format!(
                    "merge {} ({}) is not two tokens separated by a space",
                    k,
                    merges.text(k)
                )));
            };
            let side = |t: &str| {
                vocab.get(t).copied().ok_or_else(|| {
                    Error::type_error(format!(
                        "merge {} ({}) names {}, which is not a token",
                        k,
                        merges.text(k),
                        quote(t)
                    ))
                })
            };
            let (li, ri) = (side(l)?, side(r)?);
            joined.clear();
            joined.push_str(l);
            joined.push_str(r);
            let Some(&m) = vocab.get(joined.as_str()) else {
                return Err(Error::type_error(format!(
                    "merge {} ({}) makes {}, which is not a token",
                    k,
                    merges.text(k),
                    quote(&joined)
                )));
            };
            // A repeated merge keeps its first (lowest) rank, as llama.cpp.
            table.entry((li as u64) << 32 | ri as u64).or_insert((k as u32, m));
        }
        let mut byte_ids = [NONE; 256];
        let mut buf = [0u8; 4];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            let found = if opts.pre == Pre::Metaspace {
                vocab.get(format!("<0x{:02X}>", b).as_str())
            } else {
                vocab.get(&*byte_to_char(b as u8).encode_utf8(&mut buf))
            };
            if let Some(&id) = found {
                *slot = id;
            }
        }
        let unk = types.iter().position(|&t| t == UNKNOWN).map_or(NONE, |i| i as u32);
        Ok(Bpe {
            tokens: tokens.into_iter().map(String::into_boxed_str).collect(),
            types: out_types,
            vocab,
            merges: table,
            byte_ids,
            unk,
            specials,
            first,
            has_user_defined,
            opts,
            scratch: RefCell::default(),
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn options(&self) -> Options {
        self.opts
    }

    pub fn piece(&self, id: u32) -> Result<&str> {
        self.check_id(id)?;
        Ok(&self.tokens[id as usize])
    }

    pub fn token_type(&self, id: u32) -> Result<i32> {
        self.check_id(id)?;
        Ok(self.types[id as usize] as i32)
    }

    fn check_id(&self, id: u32) -> Result<()> {
        if (id as usize) < self.tokens.len() {
            Ok(())
        } else {
            Err(Error::range_error(format!(
                "token id {} is out of range (the vocabulary has {} tokens)",
                id,
                self.tokens.len()
            )))
        }
    }

    /// The longest added token that matches at byte `i` of `text` (of equal
    /// ones, the first).
    fn special_at(&self, text: &str, i: usize, parse_special: bool) -> Option<u32> {
        let b = text.as_bytes()[i] as usize;
        let (lo, hi) = (self.first[b] as usize, self.first[b + 1] as usize);
        let mut best: Option<(usize, u32)> = None;
        for &id in &self.specials[lo..hi] {
            let t = self.tokens[id as usize].as_bytes();
            if best.is_none_or(|(len, _)| t.len() > len)
                && (parse_special || self.types[id as usize] as i32 == USER_DEFINED)
                && text.as_bytes()[i..].starts_with(t)
            {
                best = Some((t.len(), id));
            }
        }
        best.map(|(_, id)| id)
    }

    /// Encodes `text` (no BOS/EOS), appending ids to `out`. With
    /// `parse_special`, control tokens in the text (`<|endoftext|>`) become
    /// their ids; otherwise they are text.
    pub fn encode_into(&self, text: &str, parse_special: bool, out: &mut Vec<u32>) -> Result<()> {
        if text.len() >= NONE as usize {
            return Err(Error::range_error(format!("text of {} bytes is too long", text.len())));
        }
        let mut frags = Vec::new();
        let scan = if parse_special { !self.specials.is_empty() } else { self.has_user_defined };
        if scan {
            let b = text.as_bytes();
            let (mut raw, mut i) = (0, 0);
            while i < b.len() {
                let x = b[i] as usize;
                if self.first[x] != self.first[x + 1] {
                    if let Some(id) = self.special_at(text, i, parse_special) {
                        if i > raw {
                            frags.push(Fragment::Raw(raw, i));
                        }
                        frags.push(Fragment::Token(id));
                        i += self.tokens[id as usize].len();
                        raw = i;
                        continue;
                    }
                }
                i += 1;
            }
            if raw < b.len() {
                frags.push(Fragment::Raw(raw, b.len()));
            }
        } else if !text.is_empty() {
            frags.push(Fragment::Raw(0, text.len()));
        }
        let mut guard = self.scratch.borrow_mut();
        let sc = &mut *guard;
        let mut fragment = core::mem::take(&mut sc.fragment);
        let mut res = Ok(());
        for f in frags {
            match f {
                Fragment::Token(id) => out.push(id),
                Fragment::Raw(a, b) => {
                    let mut s = &text[a..b];
                    if self.opts.pre == Pre::Metaspace {
                        fragment.clear();
                        if self.opts.add_prefix_space {
                            fragment.push(SPACE);
                        }
                        for c in s.chars() {
                            fragment.push(if c == ' ' { SPACE } else { c });
                        }
                        s = &fragment;
                    } else if self.opts.add_prefix_space && !s.starts_with(' ') {
                        fragment.clear();
                        fragment.push(' ');
                        fragment.push_str(s);
                        s = &fragment;
                    }
                    res = split(self.opts.pre.rules(), s, &mut |p| self.encode_piece(p, out, sc));
                    if res.is_err() {
                        break;
                    }
                }
            }
        }
        sc.fragment = fragment;
        // Do not keep the buffers of one huge piece alive.
        if sc.syms.capacity() > 1 << 16 {
            sc.syms = Vec::new();
            sc.heap = BinaryHeap::new();
            sc.word = String::new();
        }
        if sc.fragment.capacity() > 1 << 16 {
            sc.fragment = String::new();
        }
        res
    }

    /// Encodes `text` (no BOS/EOS).
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_into(text, parse_special, &mut out)?;
        Ok(out)
    }

    fn encode_piece(&self, piece: &str, out: &mut Vec<u32>, sc: &mut Scratch) -> Result<()> {
        if piece.len() > CACHE_MAX_WORD {
            return self.bpe(piece, out, sc);
        }
        if let Some(ids) = sc.cache.get(piece) {
            out.extend_from_slice(ids);
            return Ok(());
        }
        let from = out.len();
        self.bpe(piece, out, sc)?;
        if sc.cache.len() >= CACHE_MAX_ENTRIES {
            sc.cache.clear();
        }
        sc.cache.insert(piece.into(), out[from..].into());
        Ok(())
    }

    #[inline]
    fn push_pair(&self, syms: &[Sym], left: u32, heap: &mut BinaryHeap<Pair>) {
        let l = syms[left as usize];
        if l.next == NONE {
            return;
        }
        let r = syms[l.next as usize].id;
        if let Some(&(rank, merged)) = self.merges.get(&((l.id as u64) << 32 | r as u64)) {
            heap.push(Pair { key: (rank as u64) << 32 | left as u64, left: l.id, right: r, merged });
        }
    }

    /// The initial tokens of a [`Pre::Metaspace`] piece: its characters,
    /// byte fallback for those that are no token, else the unknown token
    /// (repeats fused).
    fn metaspace_syms(&self, piece: &str, syms: &mut Vec<Sym>) -> Result<()> {
        let mut buf = [0u8; 4];
        for c in piece.chars() {
            let s: &str = c.encode_utf8(&mut buf);
            match self.vocab.get(s) {
                Some(&id) if (self.types[id as usize] as i32) != CONTROL => syms.push(Sym { id, prev: 0, next: 0 }),
                _ => {
                    if s.bytes().all(|b| self.byte_ids[b as usize] != NONE) {
                        for b in s.bytes() {
                            syms.push(Sym { id: self.byte_ids[b as usize], prev: 0, next: 0 });
                        }
                    } else if self.unk != NONE {
                        if syms.last().is_none_or(|l| l.id != self.unk) {
                            syms.push(Sym { id: self.unk, prev: 0, next: 0 });
                        }
                    } else {
                        return Err(Error::type_error(format!(
                            "cannot encode {}: the vocabulary has no token for {}, no byte tokens for it and no unknown token",
                            quote(piece),
                            quote(s)
                        )));
                    }
                }
            }
        }
        let n = syms.len() as u32;
        for (k, s) in syms.iter_mut().enumerate() {
            let k = k as u32;
            s.prev = if k == 0 { NONE } else { k - 1 };
            s.next = if k + 1 == n { NONE } else { k + 1 };
        }
        Ok(())
    }

    /// BPE over one piece.
    fn bpe(&self, piece: &str, out: &mut Vec<u32>, sc: &mut Scratch) -> Result<()> {
        if self.opts.pre == Pre::Metaspace {
            sc.syms.clear();
            sc.heap.clear();
            self.metaspace_syms(piece, &mut sc.syms)?;
            return self.merge(out, sc);
        }
        if self.opts.ignore_merges {
            sc.word.clear();
            sc.word.extend(piece.bytes().map(byte_to_char));
            if let Some(&id) = self.vocab.get(sc.word.as_str()) {
                out.push(id);
                return Ok(());
            }
        }
        let syms = &mut sc.syms;
        let heap = &mut sc.heap;
        syms.clear();
        heap.clear();
        for (k, b) in piece.bytes().enumerate() {
            let id = self.byte_ids[b as usize];
            if id == NONE {
                return Err(Error::type_error(format!(
                    "cannot encode {}: the vocabulary has no token for its byte 0x{:02X} ({})",
                    quote(piece),
                    b,
                    quote(&byte_to_char(b).to_string())
                )));
            }
            let k = k as u32;
            syms.push(Sym { id, prev: if k == 0 { NONE } else { k - 1 }, next: k + 1 });
        }
        let Some(last) = syms.last_mut() else { return Ok(()) };
        last.next = NONE;
        self.merge(out, sc)
    }

    /// Merges the symbols `sc.syms` (a linked list from 0) by rank and
    /// appends their ids.
    fn merge(&self, out: &mut Vec<u32>, sc: &mut Scratch) -> Result<()> {
        let syms = &mut sc.syms;
        let heap = &mut sc.heap;
        if syms.is_empty() {
            return Ok(());
        }
        for i in 0..syms.len() as u32 - 1 {
            self.push_pair(syms, i, heap);
        }
        while let Some(p) = heap.pop() {
            let l = (p.key & 0xFFFF_FFFF) as usize;
            let r = syms[l].next;
            // Stale: one side has merged since this pair was queued.
            if syms[l].id != p.left || r == NONE || syms[r as usize].id != p.right {
                continue;
            }
            let rn = syms[r as usize].next;
            syms[l].id = p.merged;
            syms[l].next = rn;
            syms[r as usize].id = NONE;
            if rn != NONE {
                syms[rn as usize].prev = l as u32;
                self.push_pair(syms, l as u32, heap);
            }
            let lp = syms[l].prev;
            if lp != NONE {
                self.push_pair(syms, lp, heap);
            }
        }
        // Symbol 0 is never merged into its left neighbour: the list starts there.
        let mut i = 0u32;
        while i != NONE {
            let s = syms[i as usize];
            out.push(s.id);
            i = s.next;
        }
        Ok(())
    }

    /// Appends the bytes token `id` decodes to (no range check).
    fn append_bytes(&self, id: u32, out: &mut Vec<u8>) {
        let p = &*self.tokens[id as usize];
        let t = self.types[id as usize] as i32;
        if self.opts.pre == Pre::Metaspace {
            // Hugging Face's Replace("▁", " "), ByteFallback, Fuse.
            match t {
                CONTROL | UNKNOWN => {}
                BYTE => out.push(self.byte_of(id).unwrap_or(0)),
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
            return;
        }
        match t {
            CONTROL | UNKNOWN => {}
            USER_DEFINED => out.extend_from_slice(p.as_bytes()),
            _ => {
                let start = out.len();
                for c in p.chars() {
                    match char_to_byte(c) {
                        Some(b) => out.push(b),
                        None => {
                            // Not a byte-level token: its own text.
                            out.truncate(start);
                            out.extend_from_slice(p.as_bytes());
                            return;
                        }
                    }
                }
            }
        }
    }

    /// The byte of a byte token (`<0xNN>`).
    fn byte_of(&self, id: u32) -> Option<u8> {
        let h = self.tokens[id as usize].strip_prefix("<0x")?.strip_suffix('>')?;
        if h.len() != 2 {
            return None;
        }
        u8::from_str_radix(h, 16).ok()
    }

    /// Decodes `ids` to text (see [`DecodeState`]); `lossy`: invalid UTF-8
    /// becomes U+FFFD instead of an error.
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
    /// Drop the first space ([`Pre::Metaspace`] with `add_prefix_space`).
    strip: bool,
    stream: Utf8Stream,
}

impl DecodeState {
    /// `strip_leading_space`: the ids start a text, so a [`Pre::Metaspace`]
    /// tokenizer that prepends `▁` drops the first space.
    pub fn new(bpe: &Bpe, strip_leading_space: bool, lossy: bool) -> DecodeState {
        let o = bpe.opts;
        DecodeState {
            strip: strip_leading_space && o.pre == Pre::Metaspace && o.add_prefix_space,
            stream: Utf8Stream::new(lossy),
        }
    }

    /// Decodes one more id, appending the complete characters to `out`.
    pub fn push(&mut self, bpe: &Bpe, id: u32, out: &mut String) -> Result<()> {
        bpe.check_id(id)?;
        let start = self.stream.pending.len();
        bpe.append_bytes(id, &mut self.stream.pending);
        let pending = &mut self.stream.pending;
        if self.strip && pending.len() > start {
            self.strip = false;
            if pending[start] == b' ' {
                pending.remove(start);
            }
        }
        self.stream.drain_token(id, &bpe.tokens[id as usize], out)
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
    use super::{Bpe, DecodeState, Merges, Options, Pre};
    use crate::js_err;
    use std::rc::Rc;
    use wasm_bindgen::prelude::*;

    /// A byte-level BPE tokenizer held in Wasm memory.
    #[wasm_bindgen(js_name = BpeTokenizer)]
    pub struct WasmBpeTokenizer {
        inner: Rc<Bpe>,
    }

    #[wasm_bindgen(js_class = BpeTokenizer)]
    impl WasmBpeTokenizer {
        /// From the token texts and types (GGUF `tokenizer.ggml.{tokens,
        /// token_type}`) and the merges in rank order: `"a b"` strings, or
        /// with `mergePairs` a flat list of left and right sides. `pre`: a
        /// pre-tokenizer name (`tokenizer.ggml.pre`).
        #[wasm_bindgen(js_name = fromVocab)]
        pub fn from_vocab(
            tokens: Vec<String>,
            types: &[i32],
            merges: Vec<String>,
            merge_pairs: bool,
            pre: &str,
            ignore_merges: bool,
            add_prefix_space: bool,
        ) -> Result<WasmBpeTokenizer, JsValue> {
            let pre = Pre::from_name(pre).map_err(js_err)?;
            let m = if merge_pairs { Merges::Pairs(&merges) } else { Merges::Joined(&merges) };
            let opts = Options { pre, ignore_merges, add_prefix_space };
            let bpe = Bpe::new(tokens, types, m, opts).map_err(js_err)?;
            Ok(WasmBpeTokenizer { inner: Rc::new(bpe) })
        }

        /// The pieces a pre-tokenizer splits `text` into (before BPE).
        #[wasm_bindgen(js_name = preSplit)]
        pub fn pre_split(pre: &str, text: &str) -> Result<Vec<String>, JsValue> {
            let pre = Pre::from_name(pre).map_err(js_err)?;
            Ok(pre.split(text).into_iter().map(String::from).collect())
        }

        #[wasm_bindgen(getter, js_name = vocabSize)]
        pub fn vocab_size(&self) -> usize {
            self.inner.vocab_size()
        }

        /// The canonical name of the pre-tokenizer.
        #[wasm_bindgen(getter)]
        pub fn pre(&self) -> String {
            self.inner.options().pre.name().into()
        }

        /// Ids of `text`, no BOS/EOS.
        pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>, JsValue> {
            self.inner.encode(text, parse_special).map_err(js_err)
        }

        /// `stripLeadingSpace`: the ids start a text (see `DecodeState`).
        pub fn decode(&self, ids: &[u32], strip_leading_space: bool, lossy: bool) -> Result<String, JsValue> {
            self.inner.decode(ids, strip_leading_space, lossy).map_err(js_err)
        }

        pub fn decoder(&self, strip_leading_space: bool, lossy: bool) -> WasmBpeDecoder {
            WasmBpeDecoder {
                state: DecodeState::new(&self.inner, strip_leading_space, lossy),
                bpe: self.inner.clone(),
            }
        }
    }

    /// Incremental decoder of a `BpeTokenizer`.
    #[wasm_bindgen(js_name = BpeDecoder)]
    pub struct WasmBpeDecoder {
        bpe: Rc<Bpe>,
        state: DecodeState,
    }

    #[wasm_bindgen(js_class = BpeDecoder)]
    impl WasmBpeDecoder {
        pub fn push(&mut self, id: u32) -> Result<String, JsValue> {
            let mut out = String::new();
            self.state.push(&self.bpe, id, &mut out).map_err(js_err)?;
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

    fn bytes_vocab() -> Vec<String> {
        (0..=255u8).map(|b| byte_to_char(b).to_string()).collect()
    }

    /// The 256 byte tokens (id = byte), then the merged tokens of `merges`
    /// in order, then `extra` tokens with their types.
    fn toy_with(merges: &[&str], extra: &[(&str, i32)], opts: Options) -> Result<Bpe> {
        let mut tokens = bytes_vocab();
        let mut types = vec![NORMAL; 256];
        for m in merges {
            let t = m.replacen(' ', "", 1);
            if !tokens.contains(&t) {
                tokens.push(t);
                types.push(NORMAL);
            }
        }
        for (t, ty) in extra {
            tokens.push(t.to_string());
            types.push(*ty);
        }
        let merges: Vec<String> = merges.iter().map(|m| m.to_string()).collect();
        Bpe::new(tokens, &types, Merges::Joined(&merges), opts)
    }

    fn opts(pre: Pre) -> Options {
        Options { pre, ignore_merges: false, add_prefix_space: false }
    }

    fn toy(merges: &[&str], extra: &[(&str, i32)]) -> Bpe {
        toy_with(merges, extra, opts(Pre::Gpt2)).unwrap()
    }

    fn pieces(b: &Bpe, ids: &[u32]) -> Vec<String> {
        ids.iter().map(|&i| b.piece(i).unwrap().to_string()).collect()
    }

    #[test]
    fn byte_map_is_gpt2s() {
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let c = byte_to_char(b);
            assert!(seen.insert(c));
            assert_eq!(char_to_byte(c), Some(b));
        }
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(0xAD), '\u{143}');
        assert_eq!(char_to_byte('→'), None);
    }

    #[test]
    fn categories() {
        for c in ['a', 'é', 'Ж', '日', 'ß', 'ǅ', 'ʰ'] {
            assert_eq!(kind(c), K::Letter, "{:?}", c);
        }
        for c in ['7', '٣', '१', 'Ⅻ', '½', '²'] {
            assert_eq!(kind(c), K::Number, "{:?}", c);
        }
        for c in [' ', '\t', '\n', '\u{85}', '\u{a0}', '\u{3000}', '\u{2028}'] {
            assert_eq!(kind(c), K::Space, "{:?}", c);
        }
        for c in ['.', '€', '\u{301}', '🙂', '\u{feff}', '\u{200d}', '`', '\u{10ffff}'] {
            assert_eq!(kind(c), K::Other, "{:?}", c);
        }
        assert!(is_punct_like('。') && is_punct_like('$') && is_punct_like('«'));
        assert!(!is_punct_like('`') && !is_punct_like('€') && !is_punct_like('a'));
    }

    fn check(pre: Pre, text: &str, want: &[&str]) {
        assert_eq!(pre.split(text), want, "{:?} on {:?}", pre, text);
    }

    #[test]
    fn gpt2_splits() {
        let p = Pre::Gpt2;
        check(p, "Hello world", &["Hello", " world"]);
        check(p, "I'm don't", &["I", "'m", " don", "'t"]);
        check(p, "I'M", &["I", "'", "M"]);
        check(p, "a  b", &["a", " ", " b"]);
        check(p, "a \tb", &["a", " ", "\t", "b"]);
        check(p, "x   ", &["x", "   "]);
        check(p, "12abc 3.5", &["12", "abc", " 3", ".", "5"]);
        check(p, "hi!!! ?", &["hi", "!!!", " ?"]);
        check(p, "'''s", &["'''", "s"]);
        check(p, "\n\nfoo", &["\n", "\n", "foo"]);
        check(p, " ", &[" "]);
        check(p, "日本語 🙂🙂", &["日本語", " 🙂🙂"]);
    }

    #[test]
    fn llama3_and_qwen2_splits() {
        let p = Pre::Llama3;
        check(p, "Hello world", &["Hello", " world"]);
        check(p, "I'M DON'T we'Ll", &["I", "'M", " DON", "'T", " we", "'Ll"]);
        check(p, "12345 x", &["123", "45", " x"]);
        check(p, "  hello", &[" ", " hello"]);
        check(p, "\t\tfoo", &["\t", "\tfoo"]);
        check(p, "a\n\nb", &["a", "\n\n", "b"]);
        check(p, " \n hello", &[" \n", " hello"]);
        check(p, "(hello)", &["(hello", ")"]);
        check(p, "?!\n\nx", &["?!\n\n", "x"]);
        check(p, "x  ", &["x", "  "]);
        check(p, "\r\n", &["\r\n"]);
        check(p, "'sup 'x", &["'s", "up", " '", "x"]);
        check(Pre::Qwen2, "12345 x", &["1", "2", "3", "4", "5", " x"]);
    }

    #[test]
    fn sequence_splits() {
        check(Pre::Smollm, "abc 123", &["abc", " ", "1", "2", "3"]);
        check(Pre::Default, "Hello, world! 12345", &["Hello", ",", " world", "!", " ", "123", "45"]);
        check(Pre::Default, "$5+3`x", &["$", "5", "+", "3", "`", "x"]);
    }

    #[test]
    fn pre_names() {
        assert_eq!(Pre::from_name("gpt-2").unwrap(), Pre::Gpt2);
        assert_eq!(Pre::from_name("llama3").unwrap().name(), "llama-bpe");
        let e = Pre::from_name("tekken").unwrap_err();
        assert!(e.message.contains("\"tekken\"") && e.message.contains("\"qwen2\""), "{}", e.message);
    }

    #[test]
    fn merges_by_rank_ties_leftmost() {
        let b = toy(&["a a"], &[]);
        assert_eq!(pieces(&b, &b.encode("aaa", false).unwrap()), ["aa", "a"]);
        let b = toy(&["b c", "a b"], &[]);
        assert_eq!(pieces(&b, &b.encode("abc", false).unwrap()), ["a", "bc"]);
        let b = toy(&["a b", "b c"], &[]);
        assert_eq!(pieces(&b, &b.encode("abc", false).unwrap()), ["ab", "c"]);
        let b = toy(&["Ġ a", "Ġa b", "a b"], &[]);
        let ids = b.encode("ab ab", false).unwrap();
        assert_eq!(pieces(&b, &ids), ["ab", "Ġab"]);
        assert_eq!(b.decode(&ids, false, false).unwrap(), "ab ab");
        // Twice, through the cache.
        assert_eq!(b.encode("ab ab", false).unwrap(), ids);
    }

    #[test]
    fn ignore_merges_takes_whole_tokens() {
        let extra = [("abc", NORMAL)];
        let b = toy_with(&["a b"], &extra, opts(Pre::Llama3)).unwrap();
        assert_eq!(pieces(&b, &b.encode("abc", false).unwrap()), ["ab", "c"]);
        let o = Options { ignore_merges: true, ..opts(Pre::Llama3) };
        let b = toy_with(&["a b"], &extra, o).unwrap();
        assert_eq!(pieces(&b, &b.encode("abc", false).unwrap()), ["abc"]);
    }

    #[test]
    fn added_tokens_match_first() {
        let extra = [("<tag>", USER_DEFINED), ("<|end|>", CONTROL), ("ab", USER_DEFINED), ("abc", USER_DEFINED)];
        let b = toy(&[], &extra);
        let ids = b.encode("x<tag>y<|end|>", false).unwrap();
        assert_eq!(pieces(&b, &ids), ["x", "<tag>", "y", "<", "|", "e", "n", "d", "|", ">"]);
        let ids = b.encode("x<tag>y<|end|>", true).unwrap();
        assert_eq!(pieces(&b, &ids), ["x", "<tag>", "y", "<|end|>"]);
        // Control tokens decode to nothing, user-defined ones to their text.
        assert_eq!(b.decode(&ids, false, false).unwrap(), "x<tag>y");
        // Leftmost, then longest.
        assert_eq!(pieces(&b, &b.encode("xabcab", false).unwrap()), ["x", "abc", "ab"]);
    }

    #[test]
    fn add_prefix_space() {
        let o = Options { add_prefix_space: true, ..opts(Pre::Gpt2) };
        let b = toy_with(&["Ġ a"], &[("<t>", USER_DEFINED)], o).unwrap();
        let ids = b.encode("a<t>a", false).unwrap();
        assert_eq!(pieces(&b, &ids), ["Ġa", "<t>", "Ġa"]);
        assert_eq!(pieces(&b, &b.encode(" a", false).unwrap()), ["Ġa"]);
    }

    #[test]
    fn decoding_and_streaming() {
        let b = toy(&[], &[("→x", NORMAL)]);
        // A token outside the byte alphabet decodes to its own text.
        assert_eq!(b.decode(&[256, b'y' as u32], false, false).unwrap(), "→xy");
        let text = "日本 🙂 e\u{301}";
        let ids = b.encode(text, false).unwrap();
        assert_eq!(ids.len(), text.len());
        let mut st = DecodeState::new(&b, false, false);
        let mut parts = Vec::new();
        for &id in &ids {
            let mut o = String::new();
            st.push(&b, id, &mut o).unwrap();
            parts.push(o);
        }
        let mut o = String::new();
        st.flush(&mut o).unwrap();
        parts.push(o);
        assert_eq!(parts.concat(), text);
        assert!(parts.iter().filter(|p| p.is_empty()).count() >= 8);
    }

    #[test]
    fn metaspace_byte_fallback_and_prefix() {
        // Gemma / Llama 2 style: ▁ for spaces, characters as tokens, byte
        // fallback, merges by rank.
        let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into()];
        let mut types = vec![UNKNOWN, CONTROL];
        for b in 0..256 {
            tokens.push(format!("<0x{:02X}>", b));
            types.push(BYTE);
        }
        for t in ["▁", "a", "b", "▁a", "ab", "▁ab", "é"] {
            tokens.push(t.into());
            types.push(NORMAL);
        }
        let merges: Vec<String> = ["▁ a", "a b", "▁a b"].iter().map(|s| s.to_string()).collect();
        let id = |t: &str| tokens.iter().position(|x| x == t).unwrap() as u32;
        let (ua, ab, uab, space) = (id("▁a"), id("ab"), id("▁ab"), id("▁"));
        let mk = |prefix: bool| {
            let opts = Options { pre: Pre::Metaspace, ignore_merges: false, add_prefix_space: prefix };
            Bpe::new(tokens.clone(), &types, Merges::Joined(&merges), opts).unwrap()
        };
        let b = mk(false);
        assert_eq!(b.encode("ab ab", false).unwrap(), vec![ab, uab]);
        // "→" is no token: its three UTF-8 bytes.
        assert_eq!(b.encode("a→", false).unwrap(), vec![id("a"), 2 + 0xE2, 2 + 0x86, 2 + 0x92]);
        assert_eq!(b.decode(&b.encode(" a→ é", false).unwrap(), true, false).unwrap(), " a→ é");
        let p = mk(true);
        assert_eq!(p.encode("ab", false).unwrap(), vec![uab]);
        assert_eq!(p.encode("a", false).unwrap(), vec![ua]);
        assert_eq!(p.encode("<s>ab", true).unwrap(), vec![1, uab]);
        // The first space is dropped when decoding a text, once.
        assert_eq!(p.decode(&[uab, space, ua], true, false).unwrap(), "ab  a");
        assert_eq!(p.decode(&[1, uab], true, false).unwrap(), "ab");
        assert_eq!(p.decode(&[uab], false, false).unwrap(), " ab");
        assert_eq!(Pre::Metaspace.split("a b"), vec!["a b"]);
    }

    #[test]
    fn invalid_utf8_and_ranges() {
        let b = toy(&[], &[]);
        let e = b.decode(&[0xFF, b'a' as u32], false, false).unwrap_err();
        assert!(e.message.contains("not valid UTF-8 at token 0"), "{}", e.message);
        assert_eq!(b.decode(&[0xE6, b'a' as u32], false, true).unwrap(), "\u{FFFD}a");
        let e = b.decode(&[0xE6], false, false).unwrap_err();
        assert!(e.message.contains("end inside a UTF-8 character"), "{}", e.message);
        assert_eq!(b.decode(&[0xE6, 0x97], false, true).unwrap(), "\u{FFFD}");
        let e = b.decode(&[256], false, false).unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Range);
        assert!(e.message.contains("token id 256 is out of range"), "{}", e.message);
    }

    #[test]
    fn bad_vocabularies() {
        let o = opts(Pre::Gpt2);
        let err = |r: Result<Bpe>| r.unwrap_err().message;
        let v = bytes_vocab;
        let m = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(err(Bpe::new(vec![], &[], Merges::Joined(&[]), o)).contains("no tokens"));
        assert!(err(Bpe::new(v(), &[1; 3], Merges::Joined(&[]), o)).contains("256 tokens but 3 token types"));
        let mut t = vec![1; 256];
        t[7] = 9;
        assert!(err(Bpe::new(v(), &t, Merges::Joined(&[]), o)).contains("unknown type 9"));
        let e = err(Bpe::new(v(), &[1; 256], Merges::Joined(&m(&["a z"])), o));
        assert!(e.contains("merge 0 (\"a z\") makes \"az\", which is not a token"), "{}", e);
        let e = err(Bpe::new(v(), &[1; 256], Merges::Joined(&m(&["a ab"])), o));
        assert!(e.contains("names \"ab\", which is not a token"), "{}", e);
        let e = err(Bpe::new(v(), &[1; 256], Merges::Joined(&m(&["abc"])), o));
        assert!(e.contains("not two tokens separated by a space"), "{}", e);
        let e = err(Bpe::new(v(), &[1; 256], Merges::Pairs(&m(&["a"])), o));
        assert!(e.contains("odd number"), "{}", e);
        let e = err(Bpe::new(v(), &[1; 256], Merges::Pairs(&m(&["a", "q"])), o));
        assert!(e.contains("merge 0 ([\"a\", \"q\"]) makes \"aq\""), "{}", e);
        // A vocabulary without some byte cannot encode it.
        let mut tokens = v();
        tokens[b'z' as usize] = "<z>".into();
        let b = Bpe::new(tokens, &[1; 256], Merges::Joined(&[]), o).unwrap();
        let e = b.encode("a z", false).unwrap_err().message;
        assert!(e.contains("no token for its byte 0x7A"), "{}", e);
    }

    #[test]
    fn pair_merges_equal_joined_ones() {
        let mut tokens = bytes_vocab();
        tokens.push("ab".into());
        let o = opts(Pre::Gpt2);
        let a = Bpe::new(tokens.clone(), &[1; 257], Merges::Joined(&["a b".to_string()]), o).unwrap();
        let b = Bpe::new(tokens, &[1; 257], Merges::Pairs(&["a".to_string(), "b".to_string()]), o).unwrap();
        assert_eq!(a.encode("abab", false).unwrap(), [256, 256]);
        assert_eq!(b.encode("abab", false).unwrap(), [256, 256]);
    }
}

// ---------------------------------------------------------------------------
// Unicode table

// BEGIN GENERATED: tests/fixtures/tokenizer/make_unicode_tables.ts
/// General categories by run (V8 15.0.245.2-rusty): `start << 2 | category`.
#[rustfmt::skip]
static CATEGORY_RUNS: [u32; 1843] = [
    0x0, 0x87, 0x90, 0x97, 0xac, 0xb3, 0xc2, 0xeb,
    0xf0, 0xff, 0x105, 0x16f, 0x178, 0x17f, 0x180, 0x185,
    0x1ef, 0x1f0, 0x1f7, 0x1f8, 0x287, 0x288, 0x29f, 0x2a0,
    0x2a9, 0x2af, 0x2b0, 0x2ca, 0x2d0, 0x2d5, 0x2db, 0x2e0,
    0x2e6, 0x2e9, 0x2ef, 0x2f2, 0x2ff, 0x301, 0x35c, 0x361,
    0x3dc, 0x3e1, 0xb08, 0xb19, 0xb48, 0xb81, 0xb94, 0xbb1,
    0xbb4, 0xbb9, 0xbbc, 0xdc1, 0xdd4, 0xdd9, 0xde0, 0xde9,
    0xdfb, 0xdfd, 0xe00, 0xe19, 0xe1f, 0xe21, 0xe2c, 0xe31,
    0xe34, 0xe39, 0xe88, 0xe8d, 0xfd8, 0xfdd, 0x1208, 0x1229,
    0x14c0, 0x14c5, 0x155c, 0x1565, 0x156b, 0x1581, 0x1627, 0x162c,
    0x16fb, 0x16fc, 0x1703, 0x1704, 0x170f, 0x1710, 0x171b, 0x171c,
    0x1741, 0x17ac, 0x17bd, 0x17cf, 0x17d4, 0x1827, 0x182c, 0x1833,
    0x1838, 0x186f, 0x1870, 0x1877, 0x1881, 0x192c, 0x1982, 0x19ab,
    0x19b9, 0x19c0, 0x19c5, 0x1b53, 0x1b55, 0x1b58, 0x1b95, 0x1b9c,
    0x1bb9, 0x1bc2, 0x1be9, 0x1bf4, 0x1bfd, 0x1c03, 0x1c38, 0x1c41,
    0x1c44, 0x1c49, 0x1cc0, 0x1d35, 0x1e98, 0x1ec5, 0x1ec8, 0x1f02,
    0x1f29, 0x1fac, 0x1fd1, 0x1fd8, 0x1fdf, 0x1fe9, 0x1fec, 0x2001,
    0x2058, 0x2069, 0x206c, 0x2091, 0x2094, 0x20a1, 0x20a4, 0x20c3,
    0x20fc, 0x2101, 0x2164, 0x217b, 0x217c, 0x2181, 0x21ac, 0x21c1,
    0x2220, 0x2225, 0x223c, 0x2281, 0x2328, 0x2411, 0x24e8, 0x24f5,
    0x24f8, 0x2541, 0x2544, 0x2561, 0x2588, 0x2593, 0x259a, 0x25c3,
    0x25c5, 0x2604, 0x2615, 0x2634, 0x263d, 0x2644, 0x264d, 0x26a4,
    0x26a9, 0x26c4, 0x26c9, 0x26cc, 0x26d9, 0x26e8, 0x26f5, 0x26f8,
    0x2739, 0x273c, 0x2771, 0x2778, 0x277d, 0x2788, 0x279a, 0x27c1,
    0x27c8, 0x27d2, 0x27e8, 0x27f1, 0x27f7, 0x27f8, 0x2815, 0x282c,
    0x283d, 0x2844, 0x284d, 0x28a4, 0x28a9, 0x28c4, 0x28c9, 0x28d0,
    0x28d5, 0x28dc, 0x28e1, 0x28e8, 0x2965, 0x2974, 0x2979, 0x297c,
    0x299a, 0x29c0, 0x29c9, 0x29d4, 0x29db, 0x29dc, 0x2a15, 0x2a38,
    0x2a3d, 0x2a48, 0x2a4d, 0x2aa4, 0x2aa9, 0x2ac4, 0x2ac9, 0x2ad0,
    0x2ad5, 0x2ae8, 0x2af5, 0x2af8, 0x2b41, 0x2b44, 0x2b81, 0x2b88,
    0x2b9a, 0x2bc3, 0x2bc4, 0x2be5, 0x2be8, 0x2c15, 0x2c34, 0x2c3d,
    0x2c44, 0x2c4d, 0x2ca4, 0x2ca9, 0x2cc4, 0x2cc9, 0x2cd0, 0x2cd5,
    0x2ce8, 0x2cf5, 0x2cf8, 0x2d71, 0x2d78, 0x2d7d, 0x2d88, 0x2d9a,
    0x2dc0, 0x2dc5, 0x2dca, 0x2de0, 0x2e0d, 0x2e10, 0x2e15, 0x2e2c,
    0x2e39, 0x2e44, 0x2e49, 0x2e58, 0x2e65, 0x2e6c, 0x2e71, 0x2e74,
    0x2e79, 0x2e80, 0x2e8d, 0x2e94, 0x2ea1, 0x2eac, 0x2eb9, 0x2ee8,
    0x2f41, 0x2f44, 0x2f9a, 0x2fcc, 0x3015, 0x3034, 0x3039, 0x3044,
    0x3049, 0x30a4, 0x30a9, 0x30e8, 0x30f5, 0x30f8, 0x3161, 0x316c,
    0x3175, 0x3178, 0x3181, 0x3188, 0x319a, 0x31c0, 0x31df, 0x31e2,
    0x31fc, 0x3201, 0x3204, 0x3213, 0x3215, 0x3234, 0x3239, 0x3244,
    0x3249, 0x32a4, 0x32a9, 0x32d0, 0x32d5, 0x32e8, 0x32f5, 0x32f8,
    0x3375, 0x337c, 0x3381, 0x3388, 0x339a, 0x33c0, 0x33c5, 0x33cc,
    0x3411, 0x3434, 0x3439, 0x3444, 0x3449, 0x34ec, 0x34f5, 0x34f8,
    0x3539, 0x353c, 0x3551, 0x355c, 0x3562, 0x357d, 0x3588, 0x359a,
    0x35e4, 0x35e9, 0x3600, 0x3615, 0x365c, 0x3669, 0x36c8, 0x36cd,
    0x36f0, 0x36f5, 0x36f8, 0x3701, 0x371c, 0x379a, 0x37c0, 0x37d3,
    0x37d4, 0x3805, 0x38c4, 0x38c9, 0x38d0, 0x3901, 0x391c, 0x393f,
    0x3942, 0x396b, 0x3970, 0x3a05, 0x3a0c, 0x3a11, 0x3a14, 0x3a19,
    0x3a2c, 0x3a31, 0x3a90, 0x3a95, 0x3a98, 0x3a9d, 0x3ac4, 0x3ac9,
    0x3ad0, 0x3af5, 0x3af8, 0x3b01, 0x3b14, 0x3b19, 0x3b1c, 0x3b42,
    0x3b68, 0x3b71, 0x3b80, 0x3c01, 0x3c04, 0x3c13, 0x3c4c, 0x3c53,
    0x3c54, 0x3c82, 0x3cd0, 0x3ceb, 0x3cf8, 0x3d01, 0x3d20, 0x3d25,
    0x3db4, 0x3e17, 0x3e18, 0x3e21, 0x3e34, 0x3f43, 0x3f54, 0x3f67,
    0x3f6c, 0x4001, 0x40ac, 0x40fd, 0x4102, 0x412b, 0x4141, 0x4158,
    0x4169, 0x4178, 0x4185, 0x4188, 0x4195, 0x419c, 0x41b9, 0x41c4,
    0x41d5, 0x4208, 0x4239, 0x423c, 0x4242, 0x4268, 0x4281, 0x4318,
    0x431d, 0x4320, 0x4335, 0x4338, 0x4341, 0x43ef, 0x43f1, 0x4924,
    0x4929, 0x4938, 0x4941, 0x495c, 0x4961, 0x4964, 0x4969, 0x4978,
    0x4981, 0x4a24, 0x4a29, 0x4a38, 0x4a41, 0x4ac4, 0x4ac9, 0x4ad8,
    0x4ae1, 0x4afc, 0x4b01, 0x4b04, 0x4b09, 0x4b18, 0x4b21, 0x4b5c,
    0x4b61, 0x4c44, 0x4c49, 0x4c58, 0x4c61, 0x4d6c, 0x4d83, 0x4da6,
    0x4df4, 0x4e01, 0x4e40, 0x4e81, 0x4fd8, 0x4fe1, 0x4ff8, 0x5003,
    0x5005, 0x59b4, 0x59bb, 0x59bd, 0x5a00, 0x5a05, 0x5a6f, 0x5a74,
    0x5a81, 0x5baf, 0x5bba, 0x5bc5, 0x5be4, 0x5c01, 0x5c48, 0x5c7d,
    0x5cc8, 0x5cd7, 0x5cdc, 0x5d01, 0x5d48, 0x5d81, 0x5db4, 0x5db9,
    0x5dc4, 0x5e01, 0x5ed0, 0x5f53, 0x5f5d, 0x5f63, 0x5f6c, 0x5f71,
    0x5f74, 0x5f82, 0x5fa8, 0x5fc2, 0x5fe8, 0x6003, 0x602c, 0x6042,
    0x6068, 0x6081, 0x61e4, 0x6201, 0x6214, 0x621d, 0x62a4, 0x62a9,
    0x62ac, 0x62c1, 0x63d8, 0x6401, 0x647c, 0x6513, 0x651a, 0x6541,
    0x65b8, 0x65c1, 0x65d4, 0x6601, 0x66b0, 0x66c1, 0x6728, 0x6742,
    0x676c, 0x6801, 0x685c, 0x687b, 0x6881, 0x6954, 0x6a02, 0x6a28,
    0x6a42, 0x6a68, 0x6a83, 0x6a9d, 0x6aa3, 0x6ab8, 0x6c15, 0x6cd0,
    0x6d15, 0x6d34, 0x6d3b, 0x6d42, 0x6d6b, 0x6d84, 0x6df7, 0x6e00,
    0x6e0d, 0x6e84, 0x6eb9, 0x6ec2, 0x6ee9, 0x6f98, 0x6ff3, 0x7001,
    0x7090, 0x70ef, 0x7102, 0x7128, 0x7135, 0x7142, 0x7169, 0x71fb,
    0x7201, 0x722c, 0x7241, 0x72ec, 0x72f5, 0x7303, 0x7320, 0x734f,
    0x7350, 0x73a5, 0x73b4, 0x73b9, 0x73d0, 0x73d5, 0x73dc, 0x73e9,
    0x73ec, 0x7401, 0x7700, 0x7801, 0x7c58, 0x7c61, 0x7c78, 0x7c81,
    0x7d18, 0x7d21, 0x7d38, 0x7d41, 0x7d60, 0x7d65, 0x7d68, 0x7d6d,
    0x7d70, 0x7d75, 0x7d78, 0x7d7d, 0x7df8, 0x7e01, 0x7ed4, 0x7ed9,
    0x7ef4, 0x7ef9, 0x7efc, 0x7f09, 0x7f14, 0x7f19, 0x7f34, 0x7f41,
    0x7f50, 0x7f59, 0x7f70, 0x7f81, 0x7fb4, 0x7fc9, 0x7fd4, 0x7fd9,
    0x7ff4, 0x8043, 0x80a0, 0x80c3, 0x8110, 0x8117, 0x8148, 0x814f,
    0x817c, 0x81c2, 0x81c5, 0x81c8, 0x81d2, 0x81e8, 0x81f7, 0x81fd,
    0x8202, 0x8228, 0x8237, 0x823c, 0x8241, 0x8274, 0x8409, 0x840c,
    0x841d, 0x8420, 0x8429, 0x8450, 0x8455, 0x8458, 0x8465, 0x8478,
    0x8491, 0x8494, 0x8499, 0x849c, 0x84a1, 0x84a4, 0x84a9, 0x84b8,
    0x84bd, 0x84e8, 0x84f1, 0x8500, 0x8515, 0x8528, 0x8539, 0x853c,
    0x8542, 0x860d, 0x8616, 0x8628, 0x8c23, 0x8c30, 0x8ca7, 0x8cac,
    0x9182, 0x9270, 0x93aa, 0x9400, 0x9da3, 0x9dda, 0x9e50, 0x9f17,
    0x9f1c, 0x9f9b, 0x9fc0, 0xa60f, 0xa664, 0xa763, 0xa770, 0xa7f3,
    0xa7f8, 0xb001, 0xb394, 0xb3ad, 0xb3bc, 0xb3c9, 0xb3d0, 0xb3e7,
    0xb3f6, 0xb3fb, 0xb401, 0xb498, 0xb49d, 0xb4a0, 0xb4b5, 0xb4b8,
    0xb4c1, 0xb5a0, 0xb5bd, 0xb5c3, 0xb5c4, 0xb601, 0xb65c, 0xb681,
    0xb69c, 0xb6a1, 0xb6bc, 0xb6c1, 0xb6dc, 0xb6e1, 0xb6fc, 0xb701,
    0xb71c, 0xb721, 0xb73c, 0xb741, 0xb75c, 0xb761, 0xb77c, 0xb803,
    0xb8bd, 0xb8c3, 0xb940, 0xb94b, 0xb978, 0xc007, 0xc010, 0xc015,
    0xc01e, 0xc023, 0xc048, 0xc053, 0xc080, 0xc086, 0xc0a8, 0xc0c3,
    0xc0c5, 0xc0d8, 0xc0e2, 0xc0ed, 0xc0f7, 0xc0f8, 0xc105, 0xc25c,
    0xc275, 0xc283, 0xc285, 0xc3ef, 0xc3f1, 0xc400, 0xc415, 0xc4c0,
    0xc4c5, 0xc63c, 0xc64a, 0xc658, 0xc681, 0xc700, 0xc7c1, 0xc800,
    0xc882, 0xc8a8, 0xc922, 0xc940, 0xc946, 0xc980, 0xca02, 0xca28,
    0xcac6, 0xcb00, 0xd001, 0x13700, 0x13801, 0x29234, 0x29341, 0x293fb,
    0x29401, 0x29837, 0x29841, 0x29882, 0x298a9, 0x298b0, 0x29901, 0x299bc,
    0x299cf, 0x299d0, 0x299fb, 0x299fd, 0x29a78, 0x29a81, 0x29b9a, 0x29bc0,
    0x29bcb, 0x29be0, 0x29c5d, 0x29c80, 0x29c89, 0x29e24, 0x29e2d, 0x29f38,
    0x29f41, 0x29f48, 0x29f4d, 0x29f50, 0x29f55, 0x29f74, 0x29fc9, 0x2a008,
    0x2a00d, 0x2a018, 0x2a01d, 0x2a02c, 0x2a031, 0x2a08c, 0x2a0c2, 0x2a0d8,
    0x2a101, 0x2a1d3, 0x2a1e0, 0x2a209, 0x2a2d0, 0x2a33b, 0x2a342, 0x2a368,
    0x2a3c9, 0x2a3e3, 0x2a3ed, 0x2a3f3, 0x2a3f5, 0x2a3fc, 0x2a402, 0x2a429,
    0x2a498, 0x2a4bb, 0x2a4c1, 0x2a51c, 0x2a57f, 0x2a581, 0x2a5f4, 0x2a611,
    0x2a6cc, 0x2a707, 0x2a738, 0x2a73d, 0x2a742, 0x2a768, 0x2a77b, 0x2a781,
    0x2a794, 0x2a799, 0x2a7c2, 0x2a7e9, 0x2a7fc, 0x2a801, 0x2a8a4, 0x2a901,
    0x2a90c, 0x2a911, 0x2a930, 0x2a942, 0x2a968, 0x2a973, 0x2a981, 0x2a9dc,
    0x2a9e9, 0x2a9ec, 0x2a9f9, 0x2aac0, 0x2aac5, 0x2aac8, 0x2aad5, 0x2aadc,
    0x2aae5, 0x2aaf8, 0x2ab01, 0x2ab04, 0x2ab09, 0x2ab0c, 0x2ab6d, 0x2ab7b,
    0x2ab81, 0x2abac, 0x2abc3, 0x2abc9, 0x2abd4, 0x2ac05, 0x2ac1c, 0x2ac25,
    0x2ac3c, 0x2ac45, 0x2ac5c, 0x2ac81, 0x2ac9c, 0x2aca1, 0x2acbc, 0x2acc1,
    0x2ad6c, 0x2ad71, 0x2ada8, 0x2adc1, 0x2af8c, 0x2afaf, 0x2afb0, 0x2afc2,
    0x2afe8, 0x2b001, 0x35e90, 0x35ec1, 0x35f1c, 0x35f2d, 0x35ff0, 0x3e401,
    0x3e9b8, 0x3e9c1, 0x3eb68, 0x3ec01, 0x3ec1c, 0x3ec4d, 0x3ec60, 0x3ec75,
    0x3ec78, 0x3ec7d, 0x3eca4, 0x3eca9, 0x3ecdc, 0x3ece1, 0x3ecf4, 0x3ecf9,
    0x3ecfc, 0x3ed01, 0x3ed08, 0x3ed0d, 0x3ed14, 0x3ed19, 0x3eec8, 0x3ef4d,
    0x3f4fb, 0x3f500, 0x3f541, 0x3f640, 0x3f649, 0x3f720, 0x3f7c1, 0x3f7f0,
    0x3f843, 0x3f868, 0x3f8c3, 0x3f94c, 0x3f953, 0x3f988, 0x3f98f, 0x3f990,
    0x3f9a3, 0x3f9a4, 0x3f9ab, 0x3f9b0, 0x3f9c1, 0x3f9d4, 0x3f9d9, 0x3fbf4,
    0x3fc07, 0x3fc10, 0x3fc17, 0x3fc2c, 0x3fc33, 0x3fc42, 0x3fc6b, 0x3fc70,
    0x3fc7f, 0x3fc85, 0x3fcef, 0x3fcf8, 0x3fcff, 0x3fd00, 0x3fd05, 0x3fd6f,
    0x3fd70, 0x3fd77, 0x3fd78, 0x3fd7f, 0x3fd99, 0x3fefc, 0x3ff09, 0x3ff20,
    0x3ff29, 0x3ff40, 0x3ff49, 0x3ff60, 0x3ff69, 0x3ff74, 0x40001, 0x40030,
    0x40035, 0x4009c, 0x400a1, 0x400ec, 0x400f1, 0x400f8, 0x400fd, 0x40138,
    0x40141, 0x40178, 0x40201, 0x403ec, 0x40403, 0x4040c, 0x4041e, 0x404d0,
    0x40502, 0x405e4, 0x4062a, 0x40630, 0x40a01, 0x40a74, 0x40a81, 0x40b44,
    0x40b86, 0x40bf0, 0x40c01, 0x40c82, 0x40c90, 0x40cb5, 0x40d06, 0x40d09,
    0x40d2a, 0x40d2c, 0x40d41, 0x40dd8, 0x40e01, 0x40e78, 0x40e7f, 0x40e81,
    0x40f10, 0x40f21, 0x40f43, 0x40f46, 0x40f58, 0x41001, 0x41278, 0x41282,
    0x412a8, 0x412c1, 0x41350, 0x41361, 0x413f0, 0x41401, 0x414a0, 0x414c1,
    0x41590, 0x415bf, 0x415c1, 0x415ec, 0x415f1, 0x4162c, 0x41631, 0x4164c,
    0x41651, 0x41658, 0x4165d, 0x41688, 0x4168d, 0x416c8, 0x416cd, 0x416e8,
    0x416ed, 0x416f4, 0x41701, 0x417d0, 0x41801, 0x41cdc, 0x41d01, 0x41d58,
    0x41d81, 0x41da0, 0x41e01, 0x41e18, 0x41e1d, 0x41ec4, 0x41ec9, 0x41eec,
    0x42001, 0x42018, 0x42021, 0x42024, 0x42029, 0x420d8, 0x420dd, 0x420e4,
    0x420f1, 0x420f4, 0x420fd, 0x42158, 0x4215f, 0x42162, 0x42181, 0x421dc,
    0x421e6, 0x42201, 0x4227c, 0x4229e, 0x422c0, 0x42381, 0x423cc, 0x423d1,
    0x423d8, 0x423ee, 0x42401, 0x4245a, 0x42470, 0x4247f, 0x42481, 0x424e8,
    0x424ff, 0x42500, 0x42601, 0x426e0, 0x426f2, 0x426f9, 0x42702, 0x42740,
    0x4274a, 0x42801, 0x42804, 0x42841, 0x42850, 0x42855, 0x42860, 0x42865,
    0x428d8, 0x42902, 0x42924, 0x42943, 0x42964, 0x42981, 0x429f6, 0x429ff,
    0x42a01, 0x42a76, 0x42a80, 0x42b01, 0x42b20, 0x42b25, 0x42b94, 0x42bae,
    0x42bc3, 0x42bdc, 0x42c01, 0x42cd8, 0x42ce7, 0x42d01, 0x42d58, 0x42d62,
    0x42d81, 0x42dcc, 0x42de2, 0x42e01, 0x42e48, 0x42e67, 0x42e74, 0x42ea6,
    0x42ec0, 0x43001, 0x43124, 0x43201, 0x432cc, 0x43301, 0x433cc, 0x433ea,
    0x43401, 0x43490, 0x434c2, 0x434e8, 0x43502, 0x43529, 0x43598, 0x435bb,
    0x435bd, 0x43618, 0x43982, 0x439fc, 0x43a01, 0x43aa8, 0x43ab7, 0x43ab8,
    0x43ac1, 0x43ac8, 0x43b09, 0x43b14, 0x43c01, 0x43c76, 0x43c9d, 0x43ca0,
    0x43cc1, 0x43d18, 0x43d46, 0x43d57, 0x43d68, 0x43dc1, 0x43e08, 0x43e1b,
    0x43e28, 0x43ec1, 0x43f16, 0x43f30, 0x43f81, 0x43fdc, 0x4400d, 0x440e0,
    0x4411f, 0x44138, 0x4414a, 0x441c0, 0x441c5, 0x441cc, 0x441d5, 0x441d8,
    0x4420d, 0x442c0, 0x442ef, 0x442f4, 0x442fb, 0x44308, 0x44341, 0x443a4,
    0x443c2, 0x443e8, 0x4440d, 0x4449c, 0x444da, 0x44503, 0x44511, 0x44514,
    0x4451d, 0x44520, 0x44541, 0x445cc, 0x445d3, 0x445d9, 0x445dc, 0x4460d,
    0x446cc, 0x44705, 0x44717, 0x44724, 0x44737, 0x44738, 0x44742, 0x44769,
    0x4476f, 0x44771, 0x44777, 0x44780, 0x44786, 0x447d4, 0x44801, 0x44848,
    0x4484d, 0x448b0, 0x448e3, 0x448f8, 0x448fd, 0x44904, 0x44a01, 0x44a1c,
    0x44a21, 0x44a24, 0x44a29, 0x44a38, 0x44a3d, 0x44a78, 0x44a7d, 0x44aa7,
    0x44aa8, 0x44ac1, 0x44b7c, 0x44bc2, 0x44be8, 0x44c15, 0x44c34, 0x44c3d,
    0x44c44, 0x44c4d, 0x44ca4, 0x44ca9, 0x44cc4, 0x44cc9, 0x44cd0, 0x44cd5,
    0x44ce8, 0x44cf5, 0x44cf8, 0x44d41, 0x44d44, 0x44d75, 0x44d88, 0x44e01,
    0x44e28, 0x44e2d, 0x44e30, 0x44e39, 0x44e3c, 0x44e41, 0x44ed8, 0x44edd,
    0x44ee0, 0x44f45, 0x44f48, 0x44f4d, 0x44f53, 0x44f58, 0x44f5f, 0x44f64,
    0x45001, 0x450d4, 0x4511d, 0x4512f, 0x45142, 0x4516b, 0x45170, 0x45177,
    0x45178, 0x4517d, 0x45188, 0x45201, 0x452c0, 0x45311, 0x4531b, 0x4531d,
    0x45320, 0x45342, 0x45368, 0x45601, 0x456bc, 0x45707, 0x45761, 0x45770,
    0x45801, 0x458c0, 0x45907, 0x45911, 0x45914, 0x45942, 0x45968, 0x45983,
    0x459b4, 0x45a01, 0x45aac, 0x45ae1, 0x45ae7, 0x45ae8, 0x45b02, 0x45b28,
    0x45b42, 0x45b90, 0x45c01, 0x45c6c, 0x45cc2, 0x45cf3, 0x45cfc, 0x45d01,
    0x45d1c, 0x46001, 0x460b0, 0x460ef, 0x460f0, 0x46281, 0x46382, 0x463cc,
    0x463fd, 0x4641c, 0x46425, 0x46428, 0x46431, 0x46450, 0x46455, 0x4645c,
    0x46461, 0x464c0, 0x464fd, 0x46500, 0x46505, 0x46508, 0x46513, 0x4651c,
    0x46542, 0x46568, 0x46681, 0x466a0, 0x466a9, 0x46744, 0x46785, 0x4678b,
    0x4678d, 0x46790, 0x46801, 0x46804, 0x4682d, 0x468cc, 0x468e9, 0x468ec,
    0x468ff, 0x4691c, 0x46941, 0x46944, 0x46971, 0x46a28, 0x46a6b, 0x46a75,
    0x46a7b, 0x46a8c, 0x46ac1, 0x46be4, 0x46c03, 0x46c28, 0x46f01, 0x46f87,
    0x46f88, 0x46fc2, 0x46fe8, 0x47001, 0x47024, 0x47029, 0x470bc, 0x47101,
    0x47107, 0x47118, 0x47142, 0x471b4, 0x471c3, 0x471c9, 0x47240, 0x47401,
    0x4741c, 0x47421, 0x47428, 0x4742d, 0x474c4, 0x47519, 0x4751c, 0x47542,
    0x47568, 0x47581, 0x47598, 0x4759d, 0x475a4, 0x475a9, 0x47628, 0x47661,
    0x47664, 0x47682, 0x476a8, 0x47b81, 0x47bcc, 0x47bdf, 0x47be4, 0x47c09,
    0x47c0c, 0x47c11, 0x47c44, 0x47c49, 0x47cd0, 0x47d0f, 0x47d42, 0x47d68,
    0x47ec1, 0x47ec4, 0x47f02, 0x47f54, 0x47fff, 0x48001, 0x48e68, 0x49002,
    0x491bc, 0x491c3, 0x491d4, 0x49201, 0x49510, 0x4be41, 0x4bfc7, 0x4bfcc,
    0x4c001, 0x4d0c0, 0x4d105, 0x4d11c, 0x4d181, 0x50fec, 0x51001, 0x5191c,
    0x58401, 0x58478, 0x584c2, 0x584e8, 0x5a001, 0x5a8e4, 0x5a901, 0x5a97c,
    0x5a982, 0x5a9a8, 0x5a9bb, 0x5a9c1, 0x5aafc, 0x5ab02, 0x5ab28, 0x5ab41,
    0x5abb8, 0x5abd7, 0x5abd8, 0x5ac01, 0x5acc0, 0x5acdf, 0x5acf0, 0x5ad01,
    0x5ad13, 0x5ad14, 0x5ad42, 0x5ad68, 0x5ad6e, 0x5ad88, 0x5ad8d, 0x5ade0,
    0x5adf5, 0x5ae40, 0x5b501, 0x5b5b7, 0x5b5c2, 0x5b5e8, 0x5b901, 0x5ba02,
    0x5ba5f, 0x5ba6c, 0x5bc01, 0x5bd2c, 0x5bd41, 0x5bd44, 0x5be4d, 0x5be80,
    0x5bf81, 0x5bf8b, 0x5bf8d, 0x5bf90, 0x5c001, 0x61fe0, 0x62001, 0x63358,
    0x633fd, 0x63424, 0x6bfc1, 0x6bfd0, 0x6bfd5, 0x6bff0, 0x6bff5, 0x6bffc,
    0x6c001, 0x6c48c, 0x6c4c9, 0x6c4cc, 0x6c541, 0x6c54c, 0x6c555, 0x6c558,
    0x6c591, 0x6c5a0, 0x6c5c1, 0x6cbf0, 0x6f001, 0x6f1ac, 0x6f1c1, 0x6f1f4,
    0x6f201, 0x6f224, 0x6f241, 0x6f268, 0x6f27f, 0x6f280, 0x733c2, 0x733e8,
    0x74b02, 0x74b50, 0x74b82, 0x74bd0, 0x74d82, 0x74de4, 0x75001, 0x75154,
    0x75159, 0x75274, 0x75279, 0x75280, 0x75289, 0x7528c, 0x75295, 0x7529c,
    0x752a5, 0x752b4, 0x752b9, 0x752e8, 0x752ed, 0x752f0, 0x752f5, 0x75310,
    0x75315, 0x75418, 0x7541d, 0x7542c, 0x75435, 0x75454, 0x75459, 0x75474,
    0x75479, 0x754e8, 0x754ed, 0x754fc, 0x75501, 0x75514, 0x75519, 0x7551c,
    0x75529, 0x75544, 0x75549, 0x75a98, 0x75aa1, 0x75b04, 0x75b09, 0x75b6c,
    0x75b71, 0x75bec, 0x75bf1, 0x75c54, 0x75c59, 0x75cd4, 0x75cd9, 0x75d3c,
    0x75d41, 0x75dbc, 0x75dc1, 0x75e24, 0x75e29, 0x75ea4, 0x75ea9, 0x75f0c,
    0x75f11, 0x75f30, 0x75f3a, 0x76000, 0x76a1f, 0x76a30, 0x77c01, 0x77c7c,
    0x77c95, 0x77cac, 0x780c1, 0x781b8, 0x78401, 0x784b4, 0x784dd, 0x784f8,
    0x78502, 0x78528, 0x78539, 0x7853c, 0x78a41, 0x78ab8, 0x78b01, 0x78bb0,
    0x78bc2, 0x78be8, 0x79341, 0x793b0, 0x793c2, 0x793e8, 0x79741, 0x797b8,
    0x797c1, 0x797c6, 0x797ec, 0x797ff, 0x79800, 0x79f81, 0x79f9c, 0x79fa1,
    0x79fb0, 0x79fb5, 0x79fbc, 0x79fc1, 0x79ffc, 0x7a001, 0x7a314, 0x7a31e,
    0x7a340, 0x7a401, 0x7a510, 0x7a52d, 0x7a530, 0x7a542, 0x7a568, 0x7a57b,
    0x7a580, 0x7b1c6, 0x7b2b0, 0x7b2b6, 0x7b2c0, 0x7b2c6, 0x7b2d4, 0x7b406,
    0x7b4b8, 0x7b4be, 0x7b4f8, 0x7b801, 0x7b810, 0x7b815, 0x7b880, 0x7b885,
    0x7b88c, 0x7b891, 0x7b894, 0x7b89d, 0x7b8a0, 0x7b8a5, 0x7b8cc, 0x7b8d1,
    0x7b8e0, 0x7b8e5, 0x7b8e8, 0x7b8ed, 0x7b8f0, 0x7b909, 0x7b90c, 0x7b91d,
    0x7b920, 0x7b925, 0x7b928, 0x7b92d, 0x7b930, 0x7b935, 0x7b940, 0x7b945,
    0x7b94c, 0x7b951, 0x7b954, 0x7b95d, 0x7b960, 0x7b965, 0x7b968, 0x7b96d,
    0x7b970, 0x7b975, 0x7b978, 0x7b97d, 0x7b980, 0x7b985, 0x7b98c, 0x7b991,
    0x7b994, 0x7b99d, 0x7b9ac, 0x7b9b1, 0x7b9cc, 0x7b9d1, 0x7b9e0, 0x7b9e5,
    0x7b9f4, 0x7b9f9, 0x7b9fc, 0x7ba01, 0x7ba28, 0x7ba2d, 0x7ba70, 0x7ba85,
    0x7ba90, 0x7ba95, 0x7baa8, 0x7baad, 0x7baf0, 0x7c402, 0x7c434, 0x7efc2,
    0x7efe8, 0x80001, 0xa9b80, 0xa9c01, 0xadce8, 0xadd01, 0xae078, 0xae081,
    0xb3a88, 0xb3ac1, 0xbaf84, 0xbafc1, 0xbb978, 0xbe001, 0xbe878, 0xc0001,
    0xc4d2c, 0xc4d41, 0xc8ec0,
];
// END GENERATED
