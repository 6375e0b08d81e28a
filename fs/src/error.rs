//! Error types of the library. Each variant names the object it is about.

use thiserror::Error;

/// A text that is not a valid 64-hex-digit id.
#[derive(Debug, Error)]
#[error("invalid {kind} {text:?}: expected 64 lower-case hex digits")]
pub struct ParseIdError {
    /// Which id type was expected.
    pub kind: &'static str,
    /// The text given.
    pub text: String,
}
