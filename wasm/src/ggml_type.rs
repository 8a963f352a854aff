//! ggml tensor types: ids, names, block sizes and bytes per block, as in
//! ggml's `type_traits` table. Types that alisa can only size (the IQ and TQ
//! families) are listed so `inspect` can show every tensor of a real file;
//! dequantizing them is a clear error.

use crate::error::{Error, Result};

/// One ggml tensor type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlType {
    /// The id stored in GGUF tensor infos.
    pub id: u32,
    /// ggml's name, e.g. `"Q8_0"`.
    pub name: &'static str,
    /// Elements per block (1 for plain types).
    pub block_size: u32,
    /// Bytes per block.
    pub type_size: u32,
    /// Whether [`crate::dequant`] can turn it into floats.
    pub dequantizable: bool,
}

const fn t(id: u32, name: &'static str, block_size: u32, type_size: u32, dequantizable: bool) -> GgmlType {
    GgmlType { id, name, block_size, type_size, dequantizable }
}

/// Every type id ggml has assigned and not retired.
pub const TYPES: &[GgmlType] = &[
    t(0, "F32", 1, 4, true),
    t(1, "F16", 1, 2, true),
    t(2, "Q4_0", 32, 18, true),
    t(3, "Q4_1", 32, 20, true),
    t(6, "Q5_0", 32, 22, true),
    t(7, "Q5_1", 32, 24, true),
    t(8, "Q8_0", 32, 34, true),
    t(9, "Q8_1", 32, 36, true),
    t(10, "Q2_K", 256, 84, true),
    t(11, "Q3_K", 256, 110, true),
    t(12, "Q4_K", 256, 144, true),
    t(13, "Q5_K", 256, 176, true),
    t(14, "Q6_K", 256, 210, true),
    t(15, "Q8_K", 256, 292, true),
    t(16, "IQ2_XXS", 256, 66, false),
    t(17, "IQ2_XS", 256, 74, false),
    t(18, "IQ3_XXS", 256, 98, false),
    t(19, "IQ1_S", 256, 50, false),
    t(20, "IQ4_NL", 32, 18, false),
    t(21, "IQ3_S", 256, 110, false),
    t(22, "IQ2_S", 256, 82, false),
    t(23, "IQ4_XS", 256, 136, false),
    t(24, "I8", 1, 1, false),
    t(25, "I16", 1, 2, false),
    t(26, "I32", 1, 4, false),
    t(27, "I64", 1, 8, false),
    t(28, "F64", 1, 8, false),
    t(29, "IQ1_M", 256, 56, false),
    t(30, "BF16", 1, 2, true),
    t(34, "TQ1_0", 256, 54, false),
    t(35, "TQ2_0", 256, 66, false),
    t(39, "MXFP4", 32, 17, false),
];

impl GgmlType {
    /// Looks a type up by its GGUF id.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TYPES.iter().copied().find(|t| t.id == id)
    }

    /// Looks a type up by name (case-insensitive).
    pub fn from_name(name: &str) -> Option<GgmlType> {
        TYPES.iter().copied().find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Bytes taken by `n_elements` elements, checked: the count must be a
    /// whole number of blocks and the product must not overflow.
    pub fn bytes_for(&self, n_elements: u64) -> Result<u64> {
        let bs = self.block_size as u64;
        if n_elements % bs != 0 {
            return Err(Error::type_error(format!(
                "{} elements is not a whole number of {} blocks ({} elements each)",
                n_elements, self.name, bs
            )));
        }
        (n_elements / bs).checked_mul(self.type_size as u64).ok_or_else(|| {
            Error::range_error(format!("{} elements of {} overflow a 64-bit byte count", n_elements, self.name))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique() {
        for (i, a) in TYPES.iter().enumerate() {
            for b in &TYPES[i + 1..] {
                assert_ne!(a.id, b.id);
                assert_ne!(a.name, b.name);
            }
        }
    }

    #[test]
    fn bytes_for_checks_blocks_and_overflow() {
        let q8 = GgmlType::from_name("q8_0").unwrap();
        assert_eq!(q8.bytes_for(64).unwrap(), 68);
        assert!(q8.bytes_for(33).is_err());
        assert!(q8.bytes_for(u64::MAX - 31).is_err());
    }
}
