//! The one error type of the crate. Every failure carries a message that names
//! the problem; the wasm bindings turn `Kind::Type` into a JS `TypeError` and
//! `Kind::Range` into a JS `RangeError`, so nothing ever traps or aborts.


use core::fmt;

/// Which JS error class an [`Error`] becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Malformed or unsupported input (bad magic, unknown type, invalid UTF-8).
    Type,
    /// A size, count or offset out of range (past the end, overflow, too large).
    Range,
}

/// An error with a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
}

impl Error {
    pub fn type_error(message: impl Into<String>) -> Self {
        Self { kind: Kind::Type, message: message.into() }
    }
    pub fn range_error(message: impl Into<String>) -> Self {
        Self { kind: Kind::Range, message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type Result<T> = core::result::Result<T, Error>;
