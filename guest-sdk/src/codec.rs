//! Encoding of task arguments and results: bincode between Rust ends, JSON
//! when `mpwasm pool` feeds JSON lines. The host says which in every call.

use serde::{de::DeserializeOwned, Serialize};

use crate::bindings::types::Codec;

/// bincode 2's standard configuration; the host uses the same one.
const BINCODE: bincode::config::Configuration = bincode::config::standard();

/// Decodes one value of `T` from `bytes`, or says why not.
pub(crate) fn decode<T: DeserializeOwned>(codec: Codec, bytes: &[u8]) -> Result<T, String> {
    match codec {
        Codec::Bincode => match bincode::serde::decode_from_slice(bytes, BINCODE) {
            Ok((value, used)) if used == bytes.len() => Ok(value),
            Ok((_, used)) => Err(format!(
                "{} trailing bytes after the value",
                bytes.len() - used
            )),
            Err(e) => Err(e.to_string()),
        },
        Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
    }
}

/// Encodes `value`, or says why not.
pub(crate) fn encode<T: Serialize>(codec: Codec, value: &T) -> Result<Vec<u8>, String> {
    match codec {
        Codec::Bincode => bincode::serde::encode_to_vec(value, BINCODE).map_err(|e| e.to_string()),
        Codec::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
    }
}
