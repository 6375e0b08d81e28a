//! Accessors for the CLI's `--json` objects that panic with the whole object
//! when a field is missing or of the wrong type.

use serde_json::Value;

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key)
        .unwrap_or_else(|| panic!("JSON has no field {key:?}: {v}"))
}

/// `v[key]` as an unsigned integer.
pub fn u64_of(v: &Value, key: &str) -> u64 {
    field(v, key)
        .as_u64()
        .unwrap_or_else(|| panic!("JSON field {key:?} is not an unsigned integer: {v}"))
}

/// `v[key]` as a string.
pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    field(v, key)
        .as_str()
        .unwrap_or_else(|| panic!("JSON field {key:?} is not a string: {v}"))
}

/// `v[key]` as an array.
pub fn array_of<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    field(v, key)
        .as_array()
        .unwrap_or_else(|| panic!("JSON field {key:?} is not an array: {v}"))
}

/// Whether `s` is 64 lowercase hex digits (a BLAKE3 id).
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
