//! INT8 compression of KV-cache blocks (ALISA section 4) and ggml's Q8_0
//! weight format.
//!
//! # Asymmetric min-max INT8
//!
//! A KV block is a row-major `(tokens, channels)` array of f32 values or f16
//! bits. It is cut into groups (see [`GroupShape`]); each group `g` with
//! minimum `lo` and maximum `hi` gets
//!
//! ```text
//! scale[g] = (hi - lo) / 255            (f64 arithmetic, rounded to f32)
//! zero[g]  = round(-lo / scale[g])      (f64, half away from zero, to f32)
//! q[i]     = clamp(round(x[i] / scale[g]) + zero[g], 0, 255)   (f32 arithmetic)
//! x[i]    ~= (q[i] - zero[g]) * scale[g]                         (f32 arithmetic)
//! ```
//!
//! `round` is round-half-away-from-zero (C `roundf`, Rust `f32::round`)
//! everywhere. Each element is reconstructed within `scale/2` plus f32
//! rounding (a few ulps of the group's largest magnitude).
//!
//! Edge-case rules:
//! - Constant group (`hi == lo == c`): `scale = |c|` (`1` when `c == 0`), so
//!   `zero = -sign(c)` and every `q = 0`; dequantization gives back exactly
//!   `c` (a `-0` comes back as `+0`). This is the formula above with `|c|`
//!   (or 1) in place of the zero range, so the hot loops have no special case.
//! - A range so small that `(hi - lo) / 255` underflows f32 to 0 uses the
//!   smallest subnormal, `2^-149`, as scale.
//! - Non-finite input (NaN, +-Inf): the call fails with a range error naming
//!   the first such element (lowest flat index); the outputs are then
//!   unspecified.
//! - Groups cut at the block edge (tokens not a multiple of the token group,
//!   channels not a multiple of the head size, length not a multiple of the
//!   group size) are simply shorter: the last partial group has its own
//!   scale and zero.
//! - Empty blocks (0 tokens or 0 channels) have no groups and succeed.
//! - Mismatched buffer lengths are range errors.
//!
//! # Q8_0
//!
//! [`quantize_q8_0`] is ggml's `quantize_row_q8_0_ref`: blocks of 32,
//! `d = amax / 127` (f32), stored as f16 (round to nearest even), `q =
//! roundf(x * (1/d))` as i8 (`1/d` of the f32 `d`, 0 when `d == 0`).
//! Dequantization is [`crate::dequant::dequantize`].
//!
//! # SIMD
//!
//! On wasm32 with `simd128` every kernel has a SIMD path; the scalar path is
//! always compiled and used natively, and each call can ask for it (`simd =
//! false`) so tests can check both give identical bits (tests/int8_test.ts
//! checks both against a TypeScript reference of the formulas).
//!
//! Measured in V8 (bench/int8_bench.ts, 1M f32 elements): SIMD quantizes
//! 3-7x faster than the scalar code (which calls libm `roundf` per element)
//! and dequantizes 1.2-2x faster (LLVM auto-vectorizes the scalar loop).
//! The SIMD min/max passes use `pmin`/`pmax` plus a `v != v` NaN mask:
//! `f32x4.min`/`max`, with their NaN and -0 rules, cost V8 several
//! instructions each and made the whole quantize 1.6x slower.

// Without the SIMD paths some loop counters stay at their start.
#![cfg_attr(
    not(all(target_arch = "wasm32", target_feature = "simd128")),
    allow(unused_mut, unused_variables)
)]

use crate::error::{Error, Result};
use half::f16;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use core::arch::wasm32::*;

/// Whether this build has the wasm SIMD kernels.
pub const SIMD: bool = cfg!(all(target_arch = "wasm32", target_feature = "simd128"));

/// How a `(tokens, channels)` block is cut into groups that share a scale
/// and a zero point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupShape {
    /// Each channel of each run of `group_tokens` consecutive tokens (KIVI's
    /// choice for keys). Scales and zeros: `(ceil(tokens / group_tokens),
    /// channels)`, group `(g, c)` at `g * channels + c`.
    PerChannel { group_tokens: usize },
    /// Each run of `head_dim` consecutive channels of one token (one token's
    /// head; KIVI's choice for values). Scales and zeros: `(tokens,
    /// ceil(channels / head_dim))`, group `(t, h)` at `t * n_heads + h`.
    PerToken { head_dim: usize },
    /// Runs of `group_size` consecutive elements of the flattened block.
    /// Scales and zeros: `(ceil(tokens * channels / group_size),)`.
    Contiguous { group_size: usize },
}

/// A block's shape and grouping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub tokens: usize,
    pub channels: usize,
    pub shape: GroupShape,
}

impl Layout {
    /// Checks the group parameter (at least 1) and that the block size fits.
    pub fn new(tokens: usize, channels: usize, shape: GroupShape) -> Result<Self> {
        let (name, p) = match shape {
            GroupShape::PerChannel { group_tokens } => ("groupTokens", group_tokens),
            GroupShape::PerToken { head_dim } => ("headDim", head_dim),
            GroupShape::Contiguous { group_size } => ("groupSize", group_size),
        };
        if p == 0 {
            return Err(Error::range_error(format!("{} must be at least 1", name)));
        }
        match tokens.checked_mul(channels) {
            Some(n) if n <= u32::MAX as usize => Ok(Self { tokens, channels, shape }),
            _ => Err(Error::range_error(format!(
                "a block of {} tokens x {} channels is too large",
                tokens, channels
            ))),
        }
    }

    /// Number of elements, `tokens * channels`.
    pub fn len(&self) -> usize {
        self.tokens * self.channels
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of groups: the length of the scale and zero arrays.
    pub fn n_groups(&self) -> usize {
        match self.shape {
            GroupShape::PerChannel { group_tokens } => self.tokens.div_ceil(group_tokens) * self.channels,
            GroupShape::PerToken { head_dim } => self.tokens * self.channels.div_ceil(head_dim),
            GroupShape::Contiguous { group_size } => self.len().div_ceil(group_size),
        }
    }
}

/// The scale and zero point of a group with finite minimum `lo` and maximum
/// `hi` (see the module docs for the rules).
#[inline]
pub fn group_params(lo: f32, hi: f32) -> (f32, f32) {
    let scale = if hi == lo {
        if lo == 0.0 {
            1.0
        } else {
            lo.abs()
        }
    } else {
        let s = ((hi as f64 - lo as f64) / 255.0) as f32;
        if s == 0.0 {
            f32::from_bits(1)
        } else {
            s
        }
    };
    // `+ 0.0` turns a -0 zero point into +0.
    let zero = (-(lo as f64) / scale as f64).round() as f32 + 0.0;
    (scale, zero)
}

/// One element: `clamp(round(x / scale) + zero, 0, 255)`.
#[inline(always)]
pub fn quantize_one(x: f32, scale: f32, zero: f32) -> u8 {
    // `as i32` saturates; only finite values get here (x finite, scale > 0),
    // so clamping first in f32, as the SIMD path does, gives the same code.
    (((x / scale).round() + zero) as i32).clamp(0, 255) as u8
}

/// One element: `(q - zero) * scale`.
#[inline(always)]
pub fn dequantize_one(q: u8, scale: f32, zero: f32) -> f32 {
    (q as f32 - zero) * scale
}

// ---------------------------------------------------------------------------
// Inputs and outputs: f32 values or f16 bits.

/// Input elements: `[f32]`, or `[u16]` holding IEEE f16 bits.
pub trait Source {
    fn len(&self) -> usize;
    fn get(&self, i: usize) -> f32;
    /// Elements `i..i + 4` (caller guarantees `i + 4 <= len`).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    unsafe fn load4(&self, i: usize) -> v128;
}

impl Source for [f32] {
    #[inline(always)]
    fn len(&self) -> usize {
        <[f32]>::len(self)
    }
    #[inline(always)]
    fn get(&self, i: usize) -> f32 {
        self[i]
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    unsafe fn load4(&self, i: usize) -> v128 {
        v128_load(self.as_ptr().add(i) as *const v128)
    }
}

impl Source for [u16] {
    #[inline(always)]
    fn len(&self) -> usize {
        <[u16]>::len(self)
    }
    #[inline(always)]
    fn get(&self, i: usize) -> f32 {
        f16::from_bits(self[i]).to_f32()
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    unsafe fn load4(&self, i: usize) -> v128 {
        simd::f16x4_to_f32x4(u32x4_extend_low_u16x8(v128_load64_zero(self.as_ptr().add(i) as *const u64)))
    }
}

/// Output elements: `[f32]`, or `[u16]` receiving f16 bits (round to
/// nearest even).
pub trait Sink {
    fn len(&self) -> usize;
    fn put(&mut self, i: usize, v: f32);
    /// Stores 16 values at `i..i + 16` (caller guarantees the bounds).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    unsafe fn store16(&mut self, i: usize, v: [v128; 4]);
}

impl Sink for [f32] {
    #[inline(always)]
    fn len(&self) -> usize {
        <[f32]>::len(self)
    }
    #[inline(always)]
    fn put(&mut self, i: usize, v: f32) {
        self[i] = v;
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    unsafe fn store16(&mut self, i: usize, v: [v128; 4]) {
        let p = self.as_mut_ptr().add(i) as *mut v128;
        v128_store(p, v[0]);
        v128_store(p.add(1), v[1]);
        v128_store(p.add(2), v[2]);
        v128_store(p.add(3), v[3]);
    }
}

impl Sink for [u16] {
    #[inline(always)]
    fn len(&self) -> usize {
        <[u16]>::len(self)
    }
    #[inline(always)]
    fn put(&mut self, i: usize, v: f32) {
        self[i] = f32_to_f16_rne(v);
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    unsafe fn store16(&mut self, i: usize, v: [v128; 4]) {
        let p = self.as_mut_ptr().add(i) as *mut v128;
        let h = |a, b| u16x8_narrow_i32x4(simd::f32x4_to_f16x4(a), simd::f32x4_to_f16x4(b));
        v128_store(p, h(v[0], v[1]));
        v128_store(p.add(1), h(v[2], v[3]));
    }
}

/// f32 to f16 bits, round to nearest even (F. Giesen's
/// `float_to_half_fast3_rtne`; NaN becomes the quiet NaN 0x7e00 with the
/// sign). Lane for lane what the SIMD conversion does.
#[inline(always)]
pub fn f32_to_f16_rne(x: f32) -> u16 {
    let mut u = x.to_bits();
    let sign = u & 0x8000_0000;
    u ^= sign;
    let o = if u >= (127 + 16) << 23 {
        if u > 255 << 23 {
            0x7e00
        } else {
            0x7c00
        }
    } else if u < 113 << 23 {
        let magic = f32::from_bits(((127 - 15) + (23 - 10) + 1) << 23);
        (f32::from_bits(u) + magic).to_bits().wrapping_sub(magic.to_bits())
    } else {
        let odd = (u >> 13) & 1;
        (u.wrapping_add((((15i32 - 127) << 23) as u32).wrapping_add(0xfff)).wrapping_add(odd)) >> 13
    };
    (o | (sign >> 16)) as u16
}

// ---------------------------------------------------------------------------
// SIMD building blocks.

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use core::arch::wasm32::*;

    /// `f32::round` lane-wise (half away from zero; the sign of a zero
    /// result may differ, which no caller observes): `trunc(v +
    /// copysign(0.49999997, v))`, checked equal to `f32::round` for every
    /// finite f32 (wasm arithmetic rounds to nearest even).
    #[inline(always)]
    pub fn round_away(v: v128) -> v128 {
        let half =
            v128_or(v128_and(v, u32x4_splat(0x8000_0000)), f32x4_splat(f32::from_bits(0.5f32.to_bits() - 1)));
        f32x4_trunc(f32x4_add(v, half))
    }

    /// 1.5 * 2^23: adding it to an integral |v| < 2^22 leaves `v` in the low
    /// mantissa bits, so `bits - MAGIC_BITS` is `v` as i32 (cheaper than
    /// i32x4.trunc_sat_f32x4_s, and exact here).
    const MAGIC: f32 = 12582912.0;
    const MAGIC_BITS: u32 = 0x4B40_0000;

    /// Integral f32 lanes (|v| < 2^22) to i32.
    #[inline(always)]
    pub fn to_i32(v: v128) -> v128 {
        i32x4_sub(f32x4_add(v, f32x4_splat(MAGIC)), u32x4_splat(MAGIC_BITS))
    }

    /// `quantize_one` lane-wise, as f32 lanes `MAGIC + q` whose low byte is
    /// `q` (0..=255). The clamp happens in f32 (no NaN can reach it), which
    /// equals clamping the saturated integer as the scalar path does.
    #[inline(always)]
    pub fn quant4(x: v128, scale: v128, zero: v128) -> v128 {
        let v = f32x4_add(round_away(f32x4_div(x, scale)), zero);
        f32x4_add(f32x4_pmin(f32x4_pmax(v, f32x4_splat(0.0)), f32x4_splat(255.0)), f32x4_splat(MAGIC))
    }

    /// The low bytes of 16 lanes of `quant4` results, in order.
    #[inline(always)]
    pub fn pack_u8(a: v128, b: v128, c: v128, d: v128) -> v128 {
        let ab = i8x16_shuffle::<0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0>(a, b);
        let cd = i8x16_shuffle::<0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0>(c, d);
        i64x2_shuffle::<0, 2>(ab, cd)
    }

    /// 16 u8 lanes to four f32x4.
    #[inline(always)]
    pub fn widen_u8(q: v128) -> [v128; 4] {
        let lo = u16x8_extend_low_u8x16(q);
        let hi = u16x8_extend_high_u8x16(q);
        [
            f32x4_convert_u32x4(u32x4_extend_low_u16x8(lo)),
            f32x4_convert_u32x4(u32x4_extend_high_u16x8(lo)),
            f32x4_convert_u32x4(u32x4_extend_low_u16x8(hi)),
            f32x4_convert_u32x4(u32x4_extend_high_u16x8(hi)),
        ]
    }

    /// f16 bits in the low half of u32 lanes to f32 (exact, Inf/NaN kept).
    #[inline(always)]
    pub fn f16x4_to_f32x4(h: v128) -> v128 {
        let em = v128_and(h, u32x4_splat(0x7fff));
        let sign = i32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16);
        // Exponent and mantissa in place, then rebias by 2^112 (exact, also
        // for subnormals).
        let f = f32x4_mul(i32x4_shl(em, 13), f32x4_splat(f32::from_bits((127 + 112) << 23)));
        let inf_nan = u32x4_ge(em, u32x4_splat(0x7c00));
        v128_or(v128_or(f, v128_and(inf_nan, u32x4_splat(0x7f80_0000))), sign)
    }

    /// f32 to f16 bits in the low half of u32 lanes: `super::f32_to_f16_rne`.
    #[inline(always)]
    pub fn f32x4_to_f16x4(x: v128) -> v128 {
        let sign = v128_and(x, u32x4_splat(0x8000_0000));
        let u = v128_xor(x, sign);
        let big = u32x4_ge(u, u32x4_splat((127 + 16) << 23));
        let nan = u32x4_gt(u, u32x4_splat(255 << 23));
        let big_v = v128_bitselect(u32x4_splat(0x7e00), u32x4_splat(0x7c00), nan);
        let small = u32x4_lt(u, u32x4_splat(113 << 23));
        let magic = u32x4_splat(((127 - 15) + (23 - 10) + 1) << 23);
        let small_v = i32x4_sub(f32x4_add(u, magic), magic);
        let odd = v128_and(u32x4_shr(u, 13), u32x4_splat(1));
        let bias = u32x4_splat((((15i32 - 127) << 23) as u32).wrapping_add(0xfff));
        let norm_v = u32x4_shr(i32x4_add(i32x4_add(u, bias), odd), 13);
        let o = v128_bitselect(big_v, v128_bitselect(small_v, norm_v, small), big);
        v128_or(o, u32x4_shr(sign, 16))
    }

    #[inline(always)]
    pub fn hmin(v: v128) -> f32 {
        let m = f32x4_pmin(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
        let m = f32x4_pmin(m, i32x4_shuffle::<1, 0, 3, 2>(m, m));
        f32x4_extract_lane::<0>(m)
    }

    #[inline(always)]
    pub fn hmax(v: v128) -> f32 {
        let m = f32x4_pmax(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
        let m = f32x4_pmax(m, i32x4_shuffle::<1, 0, 3, 2>(m, m));
        f32x4_extract_lane::<0>(m)
    }
}

// ---------------------------------------------------------------------------
// Min/max passes. Each returns whether every element was finite.

/// NaN-propagating min/max of `x[a..b]` (non-empty), scalar.
#[inline(always)]
fn minmax_scalar<S: Source + ?Sized>(x: &S, a: usize, b: usize) -> (f32, f32, bool) {
    let mut lo = f32::INFINITY;
    let mut hi = f32::NEG_INFINITY;
    // v * 0 is NaN exactly for NaN and +-Inf.
    let mut nf = 0.0f32;
    for i in a..b {
        let v = x.get(i);
        lo = if v < lo { v } else { lo };
        hi = if v > hi { v } else { hi };
        nf += v * 0.0;
    }
    (lo, hi, nf == 0.0)
}

// The SIMD min/max passes use pmin/pmax (one minps/maxps each; f32x4.min and
// max cost several instructions in V8 for their NaN and -0 rules) and catch
// NaN with a separate `v != v` mask; infinities show in the min or max. Which
// zero a -0/+0 tie keeps does not change the group parameters.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn minmax_simd<S: Source + ?Sized>(x: &S, a: usize, b: usize) -> (f32, f32, bool) {
    let n4 = (b - a) / 4 * 4;
    let (mut lo, mut hi, mut ok) = (f32::INFINITY, f32::NEG_INFINITY, true);
    if n4 > 0 {
        unsafe {
            let mut lo0 = x.load4(a);
            let mut hi0 = lo0;
            let mut lo1 = lo0;
            let mut hi1 = lo0;
            let mut nan = f32x4_ne(lo0, lo0);
            let mut i = a + 4;
            while i + 8 <= a + n4 {
                let v0 = x.load4(i);
                let v1 = x.load4(i + 4);
                lo0 = f32x4_pmin(lo0, v0);
                hi0 = f32x4_pmax(hi0, v0);
                lo1 = f32x4_pmin(lo1, v1);
                hi1 = f32x4_pmax(hi1, v1);
                nan = v128_or(nan, v128_or(f32x4_ne(v0, v0), f32x4_ne(v1, v1)));
                i += 8;
            }
            if i < a + n4 {
                let v0 = x.load4(i);
                lo0 = f32x4_pmin(lo0, v0);
                hi0 = f32x4_pmax(hi0, v0);
                nan = v128_or(nan, f32x4_ne(v0, v0));
            }
            lo = simd::hmin(f32x4_pmin(lo0, lo1));
            hi = simd::hmax(f32x4_pmax(hi0, hi1));
            ok = !v128_any_true(nan) && lo.is_finite() && hi.is_finite();
        }
    }
    if a + n4 < b {
        let (l, h, f) = minmax_scalar(x, a + n4, b);
        lo = if l < lo { l } else { lo };
        hi = if h > hi { h } else { hi };
        ok &= f;
    }
    (lo, hi, ok)
}

#[inline(always)]
fn minmax<S: Source + ?Sized>(x: &S, a: usize, b: usize, simd: bool) -> (f32, f32, bool) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if simd {
        return minmax_simd(x, a, b);
    }
    let _ = simd;
    minmax_scalar(x, a, b)
}

/// Per-channel min into `lo` and max into `hi` over rows `r0..r1` (non-empty)
/// of a `(_, c)` block.
fn minmax_cols<S: Source + ?Sized>(
    x: &S,
    r0: usize,
    r1: usize,
    c: usize,
    lo: &mut [f32],
    hi: &mut [f32],
    simd: bool,
) -> bool {
    let mut c0 = 0;
    let mut ok = true;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if simd {
        // 16 channels at a time down the rows, then 4.
        unsafe {
            let mut nan = i32x4_splat(0);
            while c0 + 16 <= c {
                let base = r0 * c + c0;
                let mut l = [x.load4(base), x.load4(base + 4), x.load4(base + 8), x.load4(base + 12)];
                let mut h = l;
                for k in 0..4 {
                    nan = v128_or(nan, f32x4_ne(l[k], l[k]));
                }
                for r in r0 + 1..r1 {
                    let p = r * c + c0;
                    for k in 0..4 {
                        let v = x.load4(p + 4 * k);
                        l[k] = f32x4_pmin(l[k], v);
                        h[k] = f32x4_pmax(h[k], v);
                        nan = v128_or(nan, f32x4_ne(v, v));
                    }
                }
                for k in 0..4 {
                    v128_store(lo.as_mut_ptr().add(c0 + 4 * k) as *mut v128, l[k]);
                    v128_store(hi.as_mut_ptr().add(c0 + 4 * k) as *mut v128, h[k]);
                }
                c0 += 16;
            }
            while c0 + 4 <= c {
                let mut l = x.load4(r0 * c + c0);
                let mut h = l;
                nan = v128_or(nan, f32x4_ne(l, l));
                for r in r0 + 1..r1 {
                    let v = x.load4(r * c + c0);
                    l = f32x4_pmin(l, v);
                    h = f32x4_pmax(h, v);
                    nan = v128_or(nan, f32x4_ne(v, v));
                }
                v128_store(lo.as_mut_ptr().add(c0) as *mut v128, l);
                v128_store(hi.as_mut_ptr().add(c0) as *mut v128, h);
                c0 += 4;
            }
            ok = !v128_any_true(nan);
        }
        for j in 0..c0 {
            ok &= lo[j].is_finite() && hi[j].is_finite();
        }
    }
    let _ = simd;
    if c0 < c {
        let mut nf = 0.0f32;
        for j in c0..c {
            let v = x.get(r0 * c + j);
            lo[j] = v;
            hi[j] = v;
            nf += v * 0.0;
        }
        for r in r0 + 1..r1 {
            for j in c0..c {
                let v = x.get(r * c + j);
                lo[j] = if v < lo[j] { v } else { lo[j] };
                hi[j] = if v > hi[j] { v } else { hi[j] };
                nf += v * 0.0;
            }
        }
        ok &= nf == 0.0;
    }
    ok
}

// ---------------------------------------------------------------------------
// Quantize passes.

/// `q[i - a] = quantize_one(x[i], scale, zero)` for `i` in `a..b`.
#[inline(always)]
fn quant_run<S: Source + ?Sized>(x: &S, a: usize, b: usize, scale: f32, zero: f32, q: &mut [u8], simd: bool) {
    let mut i = a;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if simd {
        let s = f32x4_splat(scale);
        let z = f32x4_splat(zero);
        unsafe {
            while i + 16 <= b {
                let v = simd::pack_u8(
                    simd::quant4(x.load4(i), s, z),
                    simd::quant4(x.load4(i + 4), s, z),
                    simd::quant4(x.load4(i + 8), s, z),
                    simd::quant4(x.load4(i + 12), s, z),
                );
                v128_store(q.as_mut_ptr().add(i - a) as *mut v128, v);
                i += 16;
            }
        }
    }
    let _ = simd;
    for j in i..b {
        q[j - a] = quantize_one(x.get(j), scale, zero);
    }
}

/// Rows `r0..r1` of a `(_, c)` block with per-channel `scale`/`zero`.
fn quant_rows<S: Source + ?Sized>(
    x: &S,
    r0: usize,
    r1: usize,
    c: usize,
    scale: &[f32],
    zero: &[f32],
    q: &mut [u8],
    simd: bool,
) {
    for r in r0..r1 {
        let row = r * c;
        let mut j = 0;
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if simd {
            unsafe {
                while j + 16 <= c {
                    let sp = scale.as_ptr().add(j) as *const v128;
                    let zp = zero.as_ptr().add(j) as *const v128;
                    let v = simd::pack_u8(
                        simd::quant4(x.load4(row + j), v128_load(sp), v128_load(zp)),
                        simd::quant4(x.load4(row + j + 4), v128_load(sp.add(1)), v128_load(zp.add(1))),
                        simd::quant4(x.load4(row + j + 8), v128_load(sp.add(2)), v128_load(zp.add(2))),
                        simd::quant4(x.load4(row + j + 12), v128_load(sp.add(3)), v128_load(zp.add(3))),
                    );
                    v128_store(q.as_mut_ptr().add(row + j) as *mut v128, v);
                    j += 16;
                }
            }
        }
        for k in j..c {
            q[row + k] = quantize_one(x.get(row + k), scale[k], zero[k]);
        }
    }
}

/// The range error for the first non-finite element of `x`.
fn non_finite_error<S: Source + ?Sized>(x: &S) -> Error {
    for i in 0..x.len() {
        let v = x.get(i);
        if !v.is_finite() {
            return Error::range_error(format!(
                "input element {} is {} (INT8 quantization needs finite values)",
                i, v
            ));
        }
    }
    Error::range_error("input has a non-finite value")
}

fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(Error::range_error(format!("{} has {} elements, expected {}", what, got, want)));
    }
    Ok(())
}

fn check_buffers(
    l: &Layout,
    x_len: usize,
    q_len: usize,
    scale_len: usize,
    zero_len: usize,
    x_what: &str,
) -> Result<()> {
    check_len(x_what, x_len, l.len())?;
    check_len("q", q_len, l.len())?;
    check_len("scale", scale_len, l.n_groups())?;
    check_len("zero", zero_len, l.n_groups())
}

/// Quantizes block `x` (layout `l`) into `q` `(tokens, channels)`, `scale`
/// and `zero` `(n_groups,)` (shaped as [`GroupShape`] says).
pub fn quantize<S: Source + ?Sized>(
    x: &S,
    l: &Layout,
    q: &mut [u8],
    scale: &mut [f32],
    zero: &mut [f32],
    simd: bool,
) -> Result<()> {
    check_buffers(l, x.len(), q.len(), scale.len(), zero.len(), "input")?;
    let (t, c) = (l.tokens, l.channels);
    let simd = simd && SIMD;
    match l.shape {
        GroupShape::PerChannel { group_tokens } => {
            for g in 0..t.div_ceil(group_tokens) {
                let r0 = g * group_tokens;
                let r1 = (r0 + group_tokens).min(t);
                let sc = &mut scale[g * c..(g + 1) * c];
                let zr = &mut zero[g * c..(g + 1) * c];
                if !minmax_cols(x, r0, r1, c, sc, zr, simd) {
                    return Err(non_finite_error(x));
                }
                for (s, z) in sc.iter_mut().zip(zr.iter_mut()) {
                    (*s, *z) = group_params(*s, *z);
                }
                quant_rows(x, r0, r1, c, sc, zr, q, simd);
            }
        }
        GroupShape::PerToken { head_dim } => {
            let nh = c.div_ceil(head_dim);
            for r in 0..t {
                for h in 0..nh {
                    let a = r * c + h * head_dim;
                    let b = r * c + ((h + 1) * head_dim).min(c);
                    quant_group(x, a, b, r * nh + h, q, scale, zero, simd)?;
                }
            }
        }
        GroupShape::Contiguous { group_size } => {
            let n = l.len();
            for g in 0..n.div_ceil(group_size) {
                let a = g * group_size;
                quant_group(x, a, (a + group_size).min(n), g, q, scale, zero, simd)?;
            }
        }
    }
    Ok(())
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn quant_group<S: Source + ?Sized>(
    x: &S,
    a: usize,
    b: usize,
    g: usize,
    q: &mut [u8],
    scale: &mut [f32],
    zero: &mut [f32],
    simd: bool,
) -> Result<()> {
    let (lo, hi, ok) = minmax(x, a, b, simd);
    if !ok {
        return Err(non_finite_error(x));
    }
    let (s, z) = group_params(lo, hi);
    scale[g] = s;
    zero[g] = z;
    quant_run(x, a, b, s, z, &mut q[a..b], simd);
    Ok(())
}

// ---------------------------------------------------------------------------
// Dequantize passes.

#[inline(always)]
fn dequant_run<O: Sink + ?Sized>(
    q: &[u8],
    a: usize,
    b: usize,
    scale: f32,
    zero: f32,
    out: &mut O,
    simd: bool,
) {
    let mut i = a;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if simd {
        let s = f32x4_splat(scale);
        let z = f32x4_splat(zero);
        unsafe {
            while i + 16 <= b {
                let w = simd::widen_u8(v128_load(q.as_ptr().add(i) as *const v128));
                out.store16(
                    i,
                    [
                        f32x4_mul(f32x4_sub(w[0], z), s),
                        f32x4_mul(f32x4_sub(w[1], z), s),
                        f32x4_mul(f32x4_sub(w[2], z), s),
                        f32x4_mul(f32x4_sub(w[3], z), s),
                    ],
                );
                i += 16;
            }
        }
    }
    let _ = simd;
    for j in i..b {
        out.put(j, dequantize_one(q[j], scale, zero));
    }
}

/// Dequantizes `q`, `scale`, `zero` (as [`quantize`] wrote them) into `out`.
pub fn dequantize<O: Sink + ?Sized>(
    q: &[u8],
    scale: &[f32],
    zero: &[f32],
    l: &Layout,
    out: &mut O,
    simd: bool,
) -> Result<()> {
    check_buffers(l, out.len(), q.len(), scale.len(), zero.len(), "output")?;
    let (t, c) = (l.tokens, l.channels);
    let simd = simd && SIMD;
    match l.shape {
        GroupShape::PerChannel { group_tokens } => {
            for r in 0..t {
                let g = r / group_tokens;
                let sc = &scale[g * c..(g + 1) * c];
                let zr = &zero[g * c..(g + 1) * c];
                let row = r * c;
                let mut j = 0;
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                if simd {
                    unsafe {
                        while j + 16 <= c {
                            let w = simd::widen_u8(v128_load(q.as_ptr().add(row + j) as *const v128));
                            let sp = sc.as_ptr().add(j) as *const v128;
                            let zp = zr.as_ptr().add(j) as *const v128;
                            let f = |k: usize| {
                                f32x4_mul(f32x4_sub(w[k], v128_load(zp.add(k))), v128_load(sp.add(k)))
                            };
                            out.store16(row + j, [f(0), f(1), f(2), f(3)]);
                            j += 16;
                        }
                    }
                }
                for k in j..c {
                    out.put(row + k, dequantize_one(q[row + k], sc[k], zr[k]));
                }
            }
        }
        GroupShape::PerToken { head_dim } => {
            let nh = c.div_ceil(head_dim);
            for r in 0..t {
                for h in 0..nh {
                    let a = r * c + h * head_dim;
                    let b = r * c + ((h + 1) * head_dim).min(c);
                    let g = r * nh + h;
                    dequant_run(q, a, b, scale[g], zero[g], out, simd);
                }
            }
        }
        GroupShape::Contiguous { group_size } => {
            let n = l.len();
            for g in 0..n.div_ceil(group_size) {
                let a = g * group_size;
                dequant_run(q, a, (a + group_size).min(n), scale[g], zero[g], out, simd);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Q8_0.

/// Bytes of one Q8_0 block (f16 d + 32 i8).
pub const Q8_0_BLOCK_BYTES: usize = 34;
/// Elements of one Q8_0 block.
pub const Q8_0_BLOCK: usize = 32;

/// ggml's `quantize_row_q8_0_ref`: `x` (a multiple of 32 elements) into
/// `out` (`x.len() / 32 * 34` bytes). Non-finite input is a range error.
pub fn quantize_q8_0(x: &[f32], out: &mut [u8], simd: bool) -> Result<()> {
    if x.len() % Q8_0_BLOCK != 0 {
        return Err(Error::range_error(format!(
            "{} elements is not a whole number of Q8_0 blocks (32 elements each)",
            x.len()
        )));
    }
    let nb = x.len() / Q8_0_BLOCK;
    if out.len() != nb * Q8_0_BLOCK_BYTES {
        return Err(Error::range_error(format!(
            "Q8_0 output is {} bytes, expected {} for {} elements",
            out.len(),
            nb * Q8_0_BLOCK_BYTES,
            x.len()
        )));
    }
    let simd = simd && SIMD;
    for (xb, yb) in x.chunks_exact(Q8_0_BLOCK).zip(out.chunks_exact_mut(Q8_0_BLOCK_BYTES)) {
        let (amax, ok) = q8_amax(xb, simd);
        if !ok {
            return Err(non_finite_error(x));
        }
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        yb[..2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
        q8_qs(xb, id, &mut yb[2..], simd);
    }
    Ok(())
}

/// max |x| of one block and whether it was finite.
#[inline(always)]
fn q8_amax(xb: &[f32], simd: bool) -> (f32, bool) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if simd {
        unsafe {
            let p = xb.as_ptr() as *const v128;
            let mut m = [f32x4_splat(0.0); 2];
            let mut nan = i32x4_splat(0);
            for k in 0..8 {
                let v = v128_load(p.add(k));
                m[k & 1] = f32x4_pmax(m[k & 1], f32x4_abs(v));
                nan = v128_or(nan, f32x4_ne(v, v));
            }
            let a = simd::hmax(f32x4_pmax(m[0], m[1]));
            return (a, !v128_any_true(nan) && a.is_finite());
        }
    }
    let _ = simd;
    let mut amax = 0.0f32;
    let mut nf = 0.0f32;
    for &v in xb {
        let a = v.abs();
        amax = if a > amax { a } else { amax };
        nf += v * 0.0;
    }
    (amax, nf == 0.0)
}

/// qs[j] = roundf(x[j] * id) as i8.
#[inline(always)]
fn q8_qs(xb: &[f32], id: f32, qs: &mut [u8], simd: bool) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if simd {
        unsafe {
            let p = xb.as_ptr() as *const v128;
            let idv = f32x4_splat(id);
            // |x * id| <= 127 (plus rounding): within to_i32's range.
            let c = |k: usize| simd::to_i32(simd::round_away(f32x4_mul(v128_load(p.add(k)), idv)));
            for h in 0..2 {
                let k = 4 * h;
                let v = i8x16_narrow_i16x8(
                    i16x8_narrow_i32x4(c(k), c(k + 1)),
                    i16x8_narrow_i32x4(c(k + 2), c(k + 3)),
                );
                v128_store(qs.as_mut_ptr().add(16 * h) as *mut v128, v);
            }
            return;
        }
    }
    let _ = simd;
    for (q, &v) in qs.iter_mut().zip(xb) {
        *q = ((v * id).round() as i8) as u8;
    }
}

// ---------------------------------------------------------------------------
// The Wasm workspace: buffers in Wasm memory that TypeScript reads and writes
// through views, so large blocks cross no copy per call.

mod bindings {
    use super::*;
    use crate::js_err;
    use wasm_bindgen::prelude::*;

    /// The module's `WebAssembly.Memory`, for views over workspace buffers.
    #[wasm_bindgen(js_name = int8Memory)]
    pub fn int8_memory() -> JsValue {
        wasm_bindgen::memory()
    }

    /// Whether this build has the SIMD kernels.
    #[wasm_bindgen(js_name = int8SimdAvailable)]
    pub fn int8_simd_available() -> bool {
        SIMD
    }

    fn count(v: f64, what: &str) -> core::result::Result<usize, JsValue> {
        if v >= 0.0 && v <= u32::MAX as f64 && v.fract() == 0.0 {
            Ok(v as usize)
        } else {
            Err(js_err(Error::range_error(format!("{} must be a non-negative integer, got {}", what, v))))
        }
    }

    fn sized<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> core::result::Result<(), JsValue> {
        if n > v.capacity() {
            v.clear();
            v.try_reserve_exact(n)
                .map_err(|_| js_err(Error::range_error(format!("out of Wasm memory for {} elements", n))))?;
        }
        v.resize(n, T::default());
        Ok(())
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mode {
        None,
        Int8,
        Q8_0,
    }

    /// Buffers for INT8 (or Q8_0) compression of blocks of one shape.
    ///
    /// `configure` (or `configureQ8_0`) sizes the buffers and is the only
    /// method that allocates; after it, re-create every view over
    /// `int8Memory().buffer`. Buffers: `input` (`length` f32 or f16 bits),
    /// `q` (`length` u8; for Q8_0, `length / 32 * 34` bytes of blocks),
    /// `scale` and `zero` (`nGroups` f32), `output` (`length` f32 or f16).
    #[wasm_bindgen]
    pub struct Int8Workspace {
        mode: Mode,
        layout: Layout,
        in32: Vec<f32>,
        in16: Vec<u16>,
        q: Vec<u8>,
        scale: Vec<f32>,
        zero: Vec<f32>,
        out32: Vec<f32>,
        out16: Vec<u16>,
        in_f16: bool,
        out_f16: bool,
    }

    impl Default for Int8Workspace {
        fn default() -> Self {
            Self::new()
        }
    }

    fn ptr<T>(v: &[T]) -> usize {
        v.as_ptr() as usize
    }

    #[wasm_bindgen]
    impl Int8Workspace {
        #[wasm_bindgen(constructor)]
        pub fn new() -> Int8Workspace {
            Int8Workspace {
                mode: Mode::None,
                layout: Layout { tokens: 0, channels: 0, shape: GroupShape::Contiguous { group_size: 1 } },
                in32: Vec::new(),
                in16: Vec::new(),
                q: Vec::new(),
                scale: Vec::new(),
                zero: Vec::new(),
                out32: Vec::new(),
                out16: Vec::new(),
                in_f16: false,
                out_f16: false,
            }
        }

        /// Sizes the buffers for `(tokens, channels)` blocks cut by `shape`
        /// (`perChannel`, `perToken` or `contiguous`) with group parameter
        /// `param` (groupTokens, headDim or groupSize); `inputType` and
        /// `outputType` are `f32` or `f16`.
        pub fn configure(
            &mut self,
            shape: &str,
            tokens: f64,
            channels: f64,
            param: f64,
            #[wasm_bindgen(js_name = inputType)] input_type: &str,
            #[wasm_bindgen(js_name = outputType)] output_type: &str,
        ) -> core::result::Result<(), JsValue> {
            let p = count(param, "the group parameter")?;
            let shape = match shape {
                "perChannel" => GroupShape::PerChannel { group_tokens: p },
                "perToken" => GroupShape::PerToken { head_dim: p },
                "contiguous" => GroupShape::Contiguous { group_size: p },
                s => {
                    return Err(js_err(Error::type_error(format!(
                        "unknown group shape {:?} (perChannel, perToken or contiguous)",
                        s
                    ))))
                }
            };
            let dtype = |s: &str, what: &str| match s {
                "f32" => Ok(false),
                "f16" => Ok(true),
                s => Err(js_err(Error::type_error(format!("unknown {} type {:?} (f32 or f16)", what, s)))),
            };
            let in_f16 = dtype(input_type, "input")?;
            let out_f16 = dtype(output_type, "output")?;
            let l =
                Layout::new(count(tokens, "tokens")?, count(channels, "channels")?, shape).map_err(js_err)?;
            let (n, g) = (l.len(), l.n_groups());
            self.mode = Mode::None;
            sized(&mut self.in32, if in_f16 { 0 } else { n })?;
            sized(&mut self.in16, if in_f16 { n } else { 0 })?;
            sized(&mut self.q, n)?;
            sized(&mut self.scale, g)?;
            sized(&mut self.zero, g)?;
            sized(&mut self.out32, if out_f16 { 0 } else { n })?;
            sized(&mut self.out16, if out_f16 { n } else { 0 })?;
            self.layout = l;
            self.in_f16 = in_f16;
            self.out_f16 = out_f16;
            self.mode = Mode::Int8;
            Ok(())
        }

        /// Sizes the buffers for Q8_0 quantization of `nElements` f32 (a
        /// multiple of 32): `input` f32, `q` the blocks.
        #[wasm_bindgen(js_name = configureQ8_0)]
        pub fn configure_q8_0(&mut self, n_elements: f64) -> core::result::Result<(), JsValue> {
            let n = count(n_elements, "nElements")?;
            if n % Q8_0_BLOCK != 0 {
                return Err(js_err(Error::range_error(format!(
                    "{} elements is not a whole number of Q8_0 blocks (32 elements each)",
                    n
                ))));
            }
            self.mode = Mode::None;
            sized(&mut self.in32, n)?;
            sized(&mut self.in16, 0)?;
            sized(&mut self.q, n / Q8_0_BLOCK * Q8_0_BLOCK_BYTES)?;
            sized(&mut self.scale, 0)?;
            sized(&mut self.zero, 0)?;
            sized(&mut self.out32, 0)?;
            sized(&mut self.out16, 0)?;
            self.layout =
                Layout { tokens: 1, channels: n, shape: GroupShape::Contiguous { group_size: Q8_0_BLOCK } };
            self.in_f16 = false;
            self.out_f16 = false;
            self.mode = Mode::Q8_0;
            Ok(())
        }

        fn need(&self, m: Mode, what: &str) -> core::result::Result<(), JsValue> {
            if self.mode != m {
                return Err(js_err(Error::type_error(format!(
                    "{}: the workspace is not configured for it",
                    what
                ))));
            }
            Ok(())
        }

        /// `input` to `q`, `scale`, `zero`. Allocates nothing.
        pub fn quantize(&mut self, simd: bool) -> core::result::Result<(), JsValue> {
            self.need(Mode::Int8, "quantize")?;
            let r = if self.in_f16 {
                super::quantize(
                    &self.in16[..],
                    &self.layout,
                    &mut self.q,
                    &mut self.scale,
                    &mut self.zero,
                    simd,
                )
            } else {
                super::quantize(
                    &self.in32[..],
                    &self.layout,
                    &mut self.q,
                    &mut self.scale,
                    &mut self.zero,
                    simd,
                )
            };
            r.map_err(js_err)
        }

        /// `q`, `scale`, `zero` to `output`. Allocates nothing.
        pub fn dequantize(&mut self, simd: bool) -> core::result::Result<(), JsValue> {
            self.need(Mode::Int8, "dequantize")?;
            let r = if self.out_f16 {
                super::dequantize(&self.q, &self.scale, &self.zero, &self.layout, &mut self.out16[..], simd)
            } else {
                super::dequantize(&self.q, &self.scale, &self.zero, &self.layout, &mut self.out32[..], simd)
            };
            r.map_err(js_err)
        }

        /// `input` (f32) to Q8_0 blocks in `q`. Allocates nothing.
        #[wasm_bindgen(js_name = quantizeQ8_0)]
        pub fn quantize_q8_0(&mut self, simd: bool) -> core::result::Result<(), JsValue> {
            self.need(Mode::Q8_0, "quantizeQ8_0")?;
            super::quantize_q8_0(&self.in32, &mut self.q, simd).map_err(js_err)
        }

        /// Elements per block (`tokens * channels`).
        #[wasm_bindgen(getter)]
        pub fn length(&self) -> usize {
            self.layout.len()
        }

        /// Scale/zero count.
        #[wasm_bindgen(getter, js_name = nGroups)]
        pub fn n_groups(&self) -> usize {
            if self.mode == Mode::Int8 {
                self.layout.n_groups()
            } else {
                0
            }
        }

        /// Byte address of `input` in Wasm memory.
        #[wasm_bindgen(getter, js_name = inputPtr)]
        pub fn input_ptr(&self) -> usize {
            if self.in_f16 {
                ptr(&self.in16)
            } else {
                ptr(&self.in32)
            }
        }

        #[wasm_bindgen(getter, js_name = qPtr)]
        pub fn q_ptr(&self) -> usize {
            ptr(&self.q)
        }

        /// Bytes in `q`.
        #[wasm_bindgen(getter, js_name = qLength)]
        pub fn q_length(&self) -> usize {
            self.q.len()
        }

        #[wasm_bindgen(getter, js_name = scalePtr)]
        pub fn scale_ptr(&self) -> usize {
            ptr(&self.scale)
        }

        #[wasm_bindgen(getter, js_name = zeroPtr)]
        pub fn zero_ptr(&self) -> usize {
            ptr(&self.zero)
        }

        #[wasm_bindgen(getter, js_name = outputPtr)]
        pub fn output_ptr(&self) -> usize {
            if self.out_f16 {
                ptr(&self.out16)
            } else {
                ptr(&self.out32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        fn gauss(&mut self) -> f32 {
            let (u, v) = (self.next().max(1e-300), self.next());
            ((-2.0 * u.ln()).sqrt() * (2.0 * core::f64::consts::PI * v).cos()) as f32
        }
    }

    fn shapes() -> Vec<GroupShape> {
        vec![
            GroupShape::PerChannel { group_tokens: 1 },
            GroupShape::PerChannel { group_tokens: 16 },
            GroupShape::PerChannel { group_tokens: 7 },
            GroupShape::PerToken { head_dim: 8 },
            GroupShape::PerToken { head_dim: 5 },
            GroupShape::Contiguous { group_size: 32 },
            GroupShape::Contiguous { group_size: 13 },
            GroupShape::Contiguous { group_size: 10_000 },
        ]
    }

    /// Group index of each element.
    fn group_of(l: &Layout, i: usize) -> usize {
        let (r, c) = (i / l.channels, i % l.channels);
        match l.shape {
            GroupShape::PerChannel { group_tokens } => (r / group_tokens) * l.channels + c,
            GroupShape::PerToken { head_dim } => r * l.channels.div_ceil(head_dim) + c / head_dim,
            GroupShape::Contiguous { group_size } => i / group_size,
        }
    }

    fn roundtrip(x: &[f32], l: &Layout) -> (Vec<u8>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut q = vec![0; l.len()];
        let mut s = vec![0.0; l.n_groups()];
        let mut z = vec![0.0; l.n_groups()];
        quantize(x, l, &mut q, &mut s, &mut z, false).unwrap();
        let mut y = vec![0.0f32; l.len()];
        dequantize(&q, &s, &z, l, &mut y[..], false).unwrap();
        (q, s, z, y)
    }

    #[test]
    fn error_within_half_scale_for_every_shape() {
        let mut rng = Rng(1);
        for &(t, c) in &[(37usize, 24usize), (16, 16), (1, 40), (5, 3)] {
            let x: Vec<f32> =
                (0..t * c).map(|i| rng.gauss() * if i % c == 2 { 30.0 } else { 1.0 } + 0.5).collect();
            for shape in shapes() {
                let l = Layout::new(t, c, shape).unwrap();
                let (q, s, z, y) = roundtrip(&x, &l);
                // Every group's min maps to 0 and its max to 255 (or near).
                for i in 0..x.len() {
                    let g = group_of(&l, i);
                    let err = (x[i] - y[i]).abs();
                    assert!(
                        err <= s[g] / 2.0 * (1.0 + 1e-5) + x[i].abs() * 1e-6,
                        "{:?} {} {} {} {}",
                        shape,
                        i,
                        x[i],
                        y[i],
                        s[g]
                    );
                    assert!(z[g].fract() == 0.0);
                    // The integer code reconstructs the value it stands for.
                    assert_eq!(y[i], dequantize_one(q[i], s[g], z[g]));
                }
            }
        }
    }

    #[test]
    fn min_and_max_hit_the_ends() {
        let x = [-1.0f32, 0.25, 3.0, 2.0];
        let l = Layout::new(1, 4, GroupShape::Contiguous { group_size: 4 }).unwrap();
        let (q, s, z, _) = roundtrip(&x, &l);
        assert_eq!(q[0], 0);
        assert_eq!(q[2], 255);
        assert_eq!(s[0], (4.0f64 / 255.0) as f32);
        assert_eq!(z[0], (255.0f64 / 4.0).round() as f32);
    }

    #[test]
    fn constant_groups_reconstruct_exactly() {
        for &c in &[0.0f32, -0.0, 1.5, -3.25, 1e-45, -1e-45, 3.4e38, -3.4e38, 7.0e-39] {
            let x = vec![c; 12];
            for shape in shapes() {
                let l = Layout::new(3, 4, shape).unwrap();
                let (q, s, z, y) = roundtrip(&x, &l);
                assert!(q.iter().all(|&v| v == 0), "{} {:?}", c, shape);
                assert!(y.iter().all(|&v| v == c), "{} {:?} {:?}", c, shape, y);
                let want_s = if c == 0.0 { 1.0 } else { c.abs() };
                assert!(s.iter().all(|&v| v == want_s));
                let want_z = if c == 0.0 { 0.0 } else { -c.signum() };
                assert!(z.iter().all(|&v| v.to_bits() == want_z.to_bits()), "{} {:?}", c, z);
            }
        }
    }

    #[test]
    fn subnormal_range_uses_smallest_scale() {
        let x = [1e-45f32, 0.0, 1e-45, 0.0];
        let l = Layout::new(1, 4, GroupShape::Contiguous { group_size: 4 }).unwrap();
        let (_, s, _, y) = roundtrip(&x, &l);
        assert_eq!(s[0], f32::from_bits(1));
        assert_eq!(&y[..], &x[..]);
    }

    #[test]
    fn non_finite_names_first_index() {
        for shape in shapes() {
            let l = Layout::new(4, 6, shape).unwrap();
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let mut x = vec![1.0f32; 24];
                x[5] = 0.5;
                x[13] = bad;
                x[22] = bad;
                let mut q = vec![0; 24];
                let mut s = vec![0.0; l.n_groups()];
                let mut z = vec![0.0; l.n_groups()];
                let e = quantize(&x[..], &l, &mut q, &mut s, &mut z, false).unwrap_err();
                assert_eq!(e.kind, crate::error::Kind::Range);
                assert!(e.message.contains("element 13 "), "{}", e.message);
            }
        }
    }

    #[test]
    fn empty_and_mismatched() {
        for shape in shapes() {
            for &(t, c) in &[(0usize, 8usize), (8, 0), (0, 0)] {
                let l = Layout::new(t, c, shape).unwrap();
                assert_eq!(l.n_groups(), 0);
                let (q, _, _, y) = roundtrip(&[], &l);
                assert!(q.is_empty() && y.is_empty());
            }
            let l = Layout::new(2, 3, shape).unwrap();
            let mut q = vec![0; 6];
            let mut s = vec![0.0; l.n_groups()];
            let mut z = vec![0.0; l.n_groups()];
            let e = quantize(&[0.0f32; 5][..], &l, &mut q, &mut s, &mut z, false).unwrap_err();
            assert!(e.message.contains("input has 5 elements, expected 6"), "{}", e.message);
            let mut s2 = vec![0.0; l.n_groups() + 1];
            assert!(quantize(&[0.0f32; 6][..], &l, &mut q, &mut s2, &mut z, false).is_err());
            let mut y = vec![0.0f32; 7];
            assert!(dequantize(&q, &s, &z, &l, &mut y[..], false).is_err());
        }
        assert!(Layout::new(2, 2, GroupShape::PerChannel { group_tokens: 0 }).is_err());
        assert!(Layout::new(1 << 20, 1 << 20, GroupShape::PerToken { head_dim: 1 }).is_err());
    }

    #[test]
    fn group_counts() {
        let l = Layout::new(10, 6, GroupShape::PerChannel { group_tokens: 4 }).unwrap();
        assert_eq!(l.n_groups(), 3 * 6);
        let l = Layout::new(10, 6, GroupShape::PerToken { head_dim: 4 }).unwrap();
        assert_eq!(l.n_groups(), 10 * 2);
        let l = Layout::new(10, 6, GroupShape::Contiguous { group_size: 7 }).unwrap();
        assert_eq!(l.n_groups(), 9);
    }

    #[test]
    fn f16_input_equals_f32_input() {
        let mut rng = Rng(7);
        let h: Vec<u16> = (0..24 * 16).map(|_| f16::from_f32(rng.gauss() * 4.0).to_bits()).collect();
        let mut h = h;
        h[3] = 0x0001; // subnormal
        h[4] = 0x8000; // -0
        h[5] = 0x7bff; // max
        let x: Vec<f32> = h.iter().map(|&b| f16::from_bits(b).to_f32()).collect();
        for shape in shapes() {
            let l = Layout::new(24, 16, shape).unwrap();
            let n = l.n_groups();
            let (mut q1, mut s1, mut z1) = (vec![0; 384], vec![0.0; n], vec![0.0; n]);
            let (mut q2, mut s2, mut z2) = (vec![0; 384], vec![0.0; n], vec![0.0; n]);
            quantize(&x[..], &l, &mut q1, &mut s1, &mut z1, false).unwrap();
            quantize(&h[..], &l, &mut q2, &mut s2, &mut z2, false).unwrap();
            assert_eq!(q1, q2);
            assert_eq!(s1, s2);
            assert_eq!(z1, z2);
        }
    }

    #[test]
    fn f16_output_rounds_like_half() {
        let mut bits = 0u32;
        loop {
            let x = f32::from_bits(bits);
            let want = f16::from_f32(x);
            let got = f32_to_f16_rne(x);
            if x.is_nan() {
                assert_eq!(got & 0x7e00, 0x7e00);
            } else {
                assert_eq!(got, want.to_bits(), "{:e} {:#x}", x, bits);
            }
            // Every exponent, many mantissas incl. halfway cases.
            bits = match bits.checked_add(0x1fff) {
                Some(b) => b,
                None => break,
            };
        }
        for &x in &[65504.0f32, 65519.99, 65520.0, 1e-8, 5.9604645e-8, 2.9802322e-8, 2.9802326e-8] {
            for s in [1.0f32, -1.0] {
                assert_eq!(f32_to_f16_rne(x * s), f16::from_f32(x * s).to_bits(), "{}", x * s);
            }
        }
    }

    fn q8_ref(x: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        for b in x.chunks(32) {
            let mut amax = 0.0f32;
            for &v in b {
                amax = amax.max(v.abs());
            }
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            out.extend_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
            for &v in b {
                out.push(((v * id).round() as i8) as u8);
            }
        }
        out
    }

    #[test]
    fn q8_0_matches_reference_and_roundtrips() {
        let mut rng = Rng(3);
        let mut x: Vec<f32> = (0..32 * 50).map(|_| rng.gauss() * 3.0).collect();
        for v in &mut x[32..64] {
            *v = 0.0;
        }
        x[70] = 1e4;
        let mut out = vec![0u8; 50 * 34];
        quantize_q8_0(&x, &mut out, false).unwrap();
        assert_eq!(out, q8_ref(&x));
        let mut y = vec![0.0f32; x.len()];
        let ty = crate::ggml_type::GgmlType::from_id(8).unwrap();
        assert_eq!(ty.name, "Q8_0");
        crate::dequant::dequantize(ty, &out, &mut y).unwrap();
        for (b, (xb, yb)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
            let d = f16::from_bits(u16::from_le_bytes([out[b * 34], out[b * 34 + 1]])).to_f32();
            for (a, c) in xb.iter().zip(yb) {
                // q*d16 vs x: d/2 from rounding plus the f16 rounding of d.
                assert!((a - c).abs() <= d / 2.0 + 127.0 * d * 4.9e-4 + 1e-6, "{} {} {}", a, c, d);
            }
        }
        assert!(quantize_q8_0(&x[..40], &mut out, false).is_err());
        assert!(quantize_q8_0(&x, &mut out[..10], false).is_err());
        x[100] = f32::NAN;
        let e = quantize_q8_0(&x, &mut out, false).unwrap_err();
        assert!(e.message.contains("element 100 "), "{}", e.message);
    }
}
