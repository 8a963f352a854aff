//! Small text helpers shared by the tokenizers: a fast hasher for the
//! vocabulary maps, quoting and hex for error messages, and the UTF-8
//! stream that streaming decoders use to never emit half a character.

use crate::error::{Error, Result};
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash (rustc's hasher): vocabulary maps are probed once per candidate
/// pair, so SipHash would dominate encoding time. Keys are not attacker-chosen
/// in a way that matters here (the vocabulary is the model's).
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

/// `HashMap` builder for [`FxHasher`].
pub type Fx = BuildHasherDefault<FxHasher>;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, mut b: &[u8]) {
        while b.len() >= 8 {
            self.add(u64::from_le_bytes(b[..8].try_into().unwrap()));
            b = &b[8..];
        }
        if b.len() >= 4 {
            self.add(u32::from_le_bytes(b[..4].try_into().unwrap()) as u64);
            b = &b[4..];
        }
        for &x in b {
            self.add(x as u64);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // The low bits of a product depend only on the low bits of its
        // input, and hashbrown picks buckets by the low bits: without the
        // rotation every merge key (left id << 32 | right id) with the same
        // right id fell in one probe chain (Gemma's 580,604 merges took 8 s
        // to load). As rustc-hash 2 does.
        self.0.rotate_left(26)
    }
}

/// `s` in double quotes, with quotes, backslashes and control characters
/// escaped; other characters as they are, so messages stay readable.
pub fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => o.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Bytes as upper-case hex pairs separated by spaces.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{:02X}", x)).collect::<Vec<_>>().join(" ")
}

/// Decoded bytes on their way to text: complete characters go out, a
/// trailing incomplete one waits for the next token's bytes.
#[derive(Debug, Clone)]
pub struct Utf8Stream {
    /// Replace invalid UTF-8 by U+FFFD instead of failing.
    pub lossy: bool,
    /// Bytes not yet emitted.
    pub pending: Vec<u8>,
    /// Tokens pushed so far (for error messages).
    pub count: usize,
}

impl Utf8Stream {
    pub fn new(lossy: bool) -> Utf8Stream {
        Utf8Stream { lossy, pending: Vec::new(), count: 0 }
    }

    /// Moves the complete characters of `pending` to `out`; keeps a trailing
    /// incomplete character. Err: the invalid bytes (strict mode).
    pub fn drain(&mut self, out: &mut String) -> core::result::Result<(), Vec<u8>> {
        let mut pos = 0;
        let res = loop {
            match core::str::from_utf8(&self.pending[pos..]) {
                Ok(s) => {
                    out.push_str(s);
                    pos = self.pending.len();
                    break Ok(());
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // from_utf8 just validated this prefix.
                    out.push_str(core::str::from_utf8(&self.pending[pos..pos + valid]).unwrap());
                    pos += valid;
                    match e.error_len() {
                        None => break Ok(()),
                        Some(n) => {
                            if self.lossy {
                                out.push('\u{FFFD}');
                                pos += n;
                            } else {
                                let bad = self.pending[pos..pos + n].to_vec();
                                pos += n;
                                break Err(bad);
                            }
                        }
                    }
                }
            }
        };
        self.pending.drain(..pos);
        res
    }

    /// Drains after the bytes of token `id` (with text `piece`) were added,
    /// turning invalid UTF-8 into an error naming the token.
    pub fn drain_token(&mut self, id: u32, piece: &str, out: &mut String) -> Result<()> {
        let pos = self.count;
        self.count += 1;
        self.drain(out).map_err(|bad| {
            Error::type_error(format!(
                "the decoded bytes are not valid UTF-8 at token {} (id {}, piece {}): bad sequence {}",
                pos,
                id,
                quote(piece),
                hex(&bad)
            ))
        })
    }

    /// Ends the stream: a held incomplete character becomes U+FFFD in lossy
    /// mode and an error otherwise.
    pub fn flush(&mut self, out: &mut String) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let bad = core::mem::take(&mut self.pending);
        if self.lossy {
            out.push('\u{FFFD}');
            Ok(())
        } else {
            Err(Error::type_error(format!(
                "the decoded bytes end inside a UTF-8 character: {} after {} tokens",
                hex(&bad),
                self.count
            )))
        }
    }
}
