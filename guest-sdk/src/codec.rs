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

/// Appends the encoding of `value` to `out`, or says why not.
pub(crate) fn encode_into<T: Serialize>(
    codec: Codec,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    match codec {
        Codec::Bincode => bincode::serde::encode_into_std_write(value, out, BINCODE)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Codec::Json => serde_json::to_writer(out, value).map_err(|e| e.to_string()),
    }
}

/// The payloads of a batch: each a little-endian `u32` length and that
/// many bytes (see `batch` in the WIT). `Err` on a malformed batch.
pub(crate) fn batch_items(mut batch: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut items = Vec::new();
    while !batch.is_empty() {
        let (len, rest) = batch
            .split_first_chunk::<4>()
            .ok_or("batch ends inside a length prefix")?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err("batch item runs past the end".into());
        }
        let (item, rest) = rest.split_at(len);
        items.push(item);
        batch = rest;
    }
    Ok(items)
}
