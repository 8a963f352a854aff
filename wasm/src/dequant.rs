//! Dequantization of ggml tensor blocks to f32, following ggml's reference
//! `dequantize_row_*` functions (ggml-quants.c) operation for operation so the
//! results match llama.cpp's bit for bit where the arithmetic allows.
//!
//! Block layouts (little-endian, `d`/`m`/`dmin` are f16 unless noted):
//! - Q4_0 (32 el, 18 B): d, qs[16] (low nibbles = elements 0..16, high = 16..32), value (q-8)*d
//! - Q4_1 (32 el, 20 B): d, m, qs[16], value q*d + m
//! - Q5_0 (32 el, 22 B): d, qh[4] (u32: 5th bit of each element), qs[16], value (q-16)*d
//! - Q5_1 (32 el, 24 B): d, m, qh[4], qs[16], value q*d + m
//! - Q8_0 (32 el, 34 B): d, qs[32] i8, value q*d
//! - Q8_1 (32 el, 36 B): d, s (unused here), qs[32] i8
//! - Q2_K (256 el, 84 B): scales[16] (4-bit scale | 4-bit min), qs[64] (2-bit), d, dmin
//! - Q3_K (256 el, 110 B): hmask[32], qs[64] (2 low bits), scales[12] (16 x 6-bit), d
//! - Q4_K (256 el, 144 B): d, dmin, scales[12] (8 x 6-bit scale + 8 x 6-bit min), qs[128]
//! - Q5_K (256 el, 176 B): d, dmin, scales[12], qh[32], qs[128]
//! - Q6_K (256 el, 210 B): ql[128], qh[64], scales[16] i8, d
//! - Q8_K (256 el, 292 B): d f32, qs[256] i8, bsums[16] i16 (unused here)

use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use half::{bf16, f16};

#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// Dequantizes whole blocks of `ty` from `src` into `dst`.
/// `src` must hold exactly `dst.len() / block_size` blocks.
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    if !ty.dequantizable {
        return Err(Error::type_error(format!("alisa cannot dequantize tensor type {} yet", ty.name)));
    }
    let bs = ty.block_size as usize;
    let ts = ty.type_size as usize;
    if dst.len() % bs != 0 {
        return Err(Error::range_error(format!(
            "{} elements is not a whole number of {} blocks ({} elements each)",
            dst.len(),
            ty.name,
            bs
        )));
    }
    let n_blocks = dst.len() / bs;
    if src.len() != n_blocks * ts {
        return Err(Error::range_error(format!(
            "{} data is {} bytes, expected {} for {} elements",
            ty.name,
            src.len(),
            n_blocks * ts,
            dst.len()
        )));
    }
    let blocks = src.chunks_exact(ts).zip(dst.chunks_exact_mut(bs));
    match ty.name {
        "F32" => {
            for (b, y) in blocks {
                y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        "F16" => {
            for (b, y) in blocks {
                y[0] = f16_at(b, 0);
            }
        }
        "BF16" => {
            for (b, y) in blocks {
                y[0] = bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
            }
        }
        "Q4_0" => blocks.for_each(|(b, y)| q4_0(b, y)),
        "Q4_1" => blocks.for_each(|(b, y)| q4_1(b, y)),
        "Q5_0" => blocks.for_each(|(b, y)| q5_0(b, y)),
        "Q5_1" => blocks.for_each(|(b, y)| q5_1(b, y)),
        "Q8_0" => blocks.for_each(|(b, y)| q8_0(&b[2..34], f16_at(b, 0), y)),
        "Q8_1" => blocks.for_each(|(b, y)| q8_0(&b[4..36], f16_at(b, 0), y)),
        "Q2_K" => blocks.for_each(|(b, y)| q2_k(b, y)),
        "Q3_K" => blocks.for_each(|(b, y)| q3_k(b, y)),
        "Q4_K" => blocks.for_each(|(b, y)| q4_k(b, y)),
        "Q5_K" => blocks.for_each(|(b, y)| q5_k(b, y)),
        "Q6_K" => blocks.for_each(|(b, y)| q6_k(b, y)),
        "Q8_K" => blocks.for_each(|(b, y)| {
            let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            q8_0(&b[4..260], d, y)
        }),
        other => return Err(Error::type_error(format!("alisa cannot dequantize tensor type {} yet", other))),
    }
    Ok(())
}

/// Converts f32 values to IEEE f16 bits (round to nearest even).
pub fn f32_to_f16_bits(src: &[f32], dst: &mut [u16]) {
    for (x, y) in src.iter().zip(dst.iter_mut()) {
        *y = f16::from_f32(*x).to_bits();
    }
}

fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        y[j] = ((qs[j] & 0x0F) as i32 - 8) as f32 * d;
        y[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

fn q4_1(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qs = &b[4..20];
    for j in 0..16 {
        y[j] = (qs[j] & 0x0F) as f32 * d + m;
        y[j + 16] = (qs[j] >> 4) as f32 * d + m;
    }
}

fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let xh0 = ((qh >> j) << 4) & 0x10;
        let xh1 = (qh >> (j + 12)) & 0x10;
        let x0 = ((qs[j] as u32 & 0x0F) | xh0) as i32 - 16;
        let x1 = ((qs[j] as u32 >> 4) | xh1) as i32 - 16;
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

fn q5_1(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let m = f16_at(b, 2);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let xh0 = ((qh >> j) << 4) & 0x10;
        let xh1 = (qh >> (j + 12)) & 0x10;
        let x0 = (qs[j] as u32 & 0x0F) | xh0;
        let x1 = (qs[j] as u32 >> 4) | xh1;
        y[j] = x0 as f32 * d + m;
        y[j + 16] = x1 as f32 * d + m;
    }
}

fn q8_0(qs: &[u8], d: f32, y: &mut [f32]) {
    for (q, v) in qs.iter().zip(y.iter_mut()) {
        *v = (*q as i8) as f32 * d;
    }
}

fn q2_k(b: &[u8], y: &mut [f32]) {
    let scales = &b[0..16];
    let qs = &b[16..80];
    let d = f16_at(b, 80);
    let min = f16_at(b, 82);
    let mut out = 0;
    let mut is = 0;
    for n in 0..2 {
        let q = &qs[n * 32..n * 32 + 32];
        let mut shift = 0;
        for _ in 0..4 {
            for half in 0..2 {
                let sc = scales[is];
                is += 1;
                let dl = d * (sc & 0x0F) as f32;
                let ml = min * (sc >> 4) as f32;
                for l in 0..16 {
                    y[out] = dl * ((q[l + 16 * half] >> shift) & 3) as f32 - ml;
                    out += 1;
                }
            }
            shift += 2;
        }
    }
}

fn q3_k(b: &[u8], y: &mut [f32]) {
    const KMASK1: u32 = 0x0303_0303;
    const KMASK2: u32 = 0x0f0f_0f0f;
    let hm = &b[0..32];
    let qs = &b[32..96];
    let sb = &b[96..108];
    let d_all = f16_at(b, 108);
    let mut aux = [
        u32::from_le_bytes([sb[0], sb[1], sb[2], sb[3]]),
        u32::from_le_bytes([sb[4], sb[5], sb[6], sb[7]]),
        u32::from_le_bytes([sb[8], sb[9], sb[10], sb[11]]),
        0u32,
    ];
    let tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4);
    aux[3] = ((aux[1] >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4);
    aux[0] = (aux[0] & KMASK2) | ((tmp & KMASK1) << 4);
    aux[1] = (aux[1] & KMASK2) | (((tmp >> 2) & KMASK1) << 4);
    let mut scales = [0i8; 16];
    for (i, a) in aux.iter().enumerate() {
        for (k, byte) in a.to_le_bytes().iter().enumerate() {
            scales[i * 4 + k] = *byte as i8;
        }
    }
    let mut out = 0;
    let mut is = 0;
    let mut m: u8 = 1;
    for n in 0..2 {
        let q = &qs[n * 32..n * 32 + 32];
        let mut shift = 0;
        for _ in 0..4 {
            for half in 0..2 {
                let dl = d_all * (scales[is] as i32 - 32) as f32;
                is += 1;
                for l in 0..16 {
                    let li = l + 16 * half;
                    let low = ((q[li] >> shift) & 3) as i32;
                    let high = if hm[li] & m != 0 { 0 } else { 4 };
                    y[out] = dl * (low - high) as f32;
                    out += 1;
                }
            }
            shift += 2;
            m <<= 1;
        }
    }
}

/// The 6-bit scale and min of sub-block `j` in a Q4_K/Q5_K `scales[12]`.
#[inline(always)]
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

fn q4_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let min = f16_at(b, 2);
    let scales = &b[4..16];
    let qs = &b[16..144];
    let mut out = 0;
    for j in 0..4 {
        let q = &qs[j * 32..j * 32 + 32];
        let (sc1, m1) = scale_min_k4(2 * j, scales);
        let (sc2, m2) = scale_min_k4(2 * j + 1, scales);
        let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
        for l in 0..32 {
            y[out + l] = d1 * (q[l] & 0x0F) as f32 - m1;
            y[out + 32 + l] = d2 * (q[l] >> 4) as f32 - m2;
        }
        out += 64;
    }
}

fn q5_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let min = f16_at(b, 2);
    let scales = &b[4..16];
    let qh = &b[16..48];
    let qs = &b[48..176];
    let mut out = 0;
    let (mut u1, mut u2) = (1u8, 2u8);
    for j in 0..4 {
        let ql = &qs[j * 32..j * 32 + 32];
        let (sc1, m1) = scale_min_k4(2 * j, scales);
        let (sc2, m2) = scale_min_k4(2 * j + 1, scales);
        let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[out + l] = d1 * ((ql[l] & 0x0F) + h1) as f32 - m1;
            y[out + 32 + l] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
        }
        out += 64;
        u1 <<= 2;
        u2 <<= 2;
    }
}

fn q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for n in 0..2 {
        let ql = &b[n * 64..n * 64 + 64];
        let qh = &b[128 + n * 32..128 + n * 32 + 32];
        let sc = &b[192 + n * 8..192 + n * 8 + 8];
        let y = &mut y[n * 128..n * 128 + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(n: &str) -> GgmlType {
        GgmlType::from_name(n).unwrap()
    }

    #[test]
    fn q8_0_known_block() {
        let mut b = vec![0u8; 34];
        b[0..2].copy_from_slice(&f16::from_f32(0.5).to_bits().to_le_bytes());
        for i in 0..32 {
            b[2 + i] = (i as i8 - 16) as u8;
        }
        let mut y = vec![0f32; 32];
        dequantize(ty("Q8_0"), &b, &mut y).unwrap();
        for i in 0..32 {
            assert_eq!(y[i], (i as f32 - 16.0) * 0.5);
        }
    }

    #[test]
    fn q4_0_known_block() {
        let mut b = vec![0u8; 18];
        b[0..2].copy_from_slice(&f16::from_f32(2.0).to_bits().to_le_bytes());
        b[2] = 0xF0; // element 0 -> 0-8, element 16 -> 15-8
        let mut y = vec![0f32; 32];
        dequantize(ty("Q4_0"), &b, &mut y).unwrap();
        assert_eq!(y[0], -16.0);
        assert_eq!(y[16], 14.0);
        assert_eq!(y[1], -16.0);
    }

    #[test]
    fn q5_0_high_bits() {
        let mut b = vec![0u8; 22];
        b[0..2].copy_from_slice(&f16::from_f32(1.0).to_bits().to_le_bytes());
        // qh bit 0 -> element 0 gets +16, bit 16 -> element 16 gets +16.
        b[2..6].copy_from_slice(&(1u32 | (1 << 16)).to_le_bytes());
        let mut y = vec![0f32; 32];
        dequantize(ty("Q5_0"), &b, &mut y).unwrap();
        assert_eq!(y[0], 0.0);
        assert_eq!(y[16], 0.0);
        assert_eq!(y[1], -16.0);
    }

    #[test]
    fn q6_k_constant_block() {
        // ql = 0, qh = 0 -> q = -32 everywhere; scales = 1, d = 0.25 -> -8.
        let mut b = vec![0u8; 210];
        for s in &mut b[192..208] {
            *s = 1;
        }
        b[208..210].copy_from_slice(&f16::from_f32(0.25).to_bits().to_le_bytes());
        let mut y = vec![0f32; 256];
        dequantize(ty("Q6_K"), &b, &mut y).unwrap();
        assert!(y.iter().all(|&v| v == -8.0));
    }

    #[test]
    fn wrong_sizes_are_errors() {
        let mut y = vec![0f32; 32];
        assert!(dequantize(ty("Q8_0"), &[0u8; 33], &mut y).is_err());
        let mut y = vec![0f32; 31];
        assert!(dequantize(ty("Q8_0"), &[0u8; 34], &mut y).is_err());
        assert!(dequantize(ty("IQ2_XXS"), &[0u8; 66], &mut vec![0f32; 256]).is_err());
    }
}
