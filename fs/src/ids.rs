//! Content-addressed identifiers: 32-byte BLAKE3 digests with a hex text form.

use std::fmt;
use std::str::FromStr;

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

macro_rules! digest_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The id of `bytes`: their BLAKE3 digest.
            pub fn of(bytes: &[u8]) -> Self {
                Self(*blake3::hash(bytes).as_bytes())
            }

            /// Lower-case hex, 64 characters.
            pub fn to_hex(&self) -> String {
                blake3::Hash::from_bytes(self.0).to_hex().to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), &self.to_hex()[..12])
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, ParseIdError> {
                blake3::Hash::from_hex(s)
                    .map(|h| Self(*h.as_bytes()))
                    .map_err(|_| ParseIdError { kind: stringify!($name), text: s.to_string() })
            }
        }
    };
}

digest_id!(
    /// A chunk: the BLAKE3 digest of its plain (uncompressed) bytes.
    ChunkId
);
digest_id!(
    /// A layer: the BLAKE3 digest of its encoded manifest object.
    LayerId
);
digest_id!(
    /// A pack: the BLAKE3 digest of the pack object's bytes.
    PackId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = ChunkId::of(b"hello");
        assert_eq!(id.to_hex().parse::<ChunkId>().unwrap(), id);
        assert!("xyz".parse::<LayerId>().is_err());
    }
}
