//! Encoding of values: bincode 2 (standard configuration) for everything
//! that crosses between processes (queue items, pipe messages, process
//! arguments, pool inputs and results); task arguments and results also in
//! JSON when `mpwasm pool` feeds JSON lines (the host says which in every
//! call).

use serde::{de::DeserializeOwned, Serialize};

use crate::bindings::types::Codec;
use crate::error::Error;

/// bincode 2's standard configuration; the host uses the same one.
///
/// A serde error (`custom`, e.g. a capability token the host refused)
/// comes back as bincode's `OtherString`, whose `Display` is its `Debug`;
/// the functions below pass on the message itself.
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
            Err(bincode::error::DecodeError::OtherString(why)) => Err(why),
            Err(bincode::error::DecodeError::UnexpectedEnd { additional }) => Err(format!(
                "too short ({} bytes); at least {additional} more bytes were needed",
                bytes.len()
            )),
            Err(e) => Err(e.to_string()),
        },
        Codec::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
    }
}

/// Appends the encoding of `value` to `out`, or says why not.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    codec: Codec,
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    match codec {
        Codec::Bincode => match bincode::serde::encode_into_std_write(value, out, BINCODE) {
            Ok(_) => Ok(()),
            Err(bincode::error::EncodeError::OtherString(why)) => Err(why),
            Err(e) => Err(e.to_string()),
        },
        Codec::Json => serde_json::to_writer(out, value).map_err(|e| e.to_string()),
    }
}

/// The bincode encoding of `value` (a queue item, pipe message, process
/// argument).
pub(crate) fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    encode_into(Codec::Bincode, value, &mut out).map_err(Error::Codec)?;
    Ok(out)
}

/// Calls `send` with the bincode encoding of `value` (a queue item, a pipe
/// message), encoded into a buffer this thread keeps, so that a small
/// message costs no allocation. A nested call (a `Serialize` that sends)
/// gets a buffer of its own.
pub(crate) fn with_bytes<T: Serialize + ?Sized, R>(
    value: &T,
    send: impl FnOnce(&[u8]) -> R,
) -> Result<R, Error> {
    with_scratch(|out| {
        encode_into(Codec::Bincode, value, out)
            .map_err(Error::Codec)
            .map(|()| send(out))
    })
}

/// Decodes a bincode value of `len` bytes, which `fill` copies into a
/// buffer this thread keeps (a staged queue item).
pub(crate) fn from_filled<T: DeserializeOwned>(
    len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Result<T, Error> {
    with_scratch(|buf| {
        buf.resize(len, 0);
        fill(buf);
        from_bytes(buf)
    })
}

/// Calls `f` with an empty buffer this thread keeps between calls (one of
/// at most 64 KiB); a nested call gets a new one.
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    /// The largest buffer kept between calls.
    const KEEP: usize = 64 * 1024;
    std::thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut buf = SCRATCH
        .with(|s| s.try_borrow_mut().map(|mut s| std::mem::take(&mut *s)))
        .unwrap_or_default();
    buf.clear();
    let r = f(&mut buf);
    if buf.capacity() <= KEEP {
        SCRATCH.with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                *s = buf;
            }
        });
    }
    r
}

/// Decodes a bincode value that must fill `bytes` exactly.
pub(crate) fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    decode(Codec::Bincode, bytes).map_err(Error::Codec)
}

/// Appends `value` to `batch` as one payload: its bincode encoding behind a
/// little-endian `u32` length (see `batch` in the WIT).
///
/// On error `batch` holds a partial payload and must be discarded.
pub(crate) fn push_payload<T: Serialize + ?Sized>(
    batch: &mut Vec<u8>,
    value: &T,
) -> Result<(), Error> {
    let start = batch.len();
    batch.extend_from_slice(&[0; 4]);
    encode_into(Codec::Bincode, value, batch).map_err(Error::Codec)?;
    let len = u32::try_from(batch.len() - start - 4)
        .map_err(|_| Error::Limit("a pool input encodes to 4 GiB or more".into()))?;
    batch[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// The payloads of a batch: each a little-endian `u32` length and that
/// many bytes (see `batch` in the WIT), checked whole before the first is
/// handed out (`Err` on a malformed batch), and then walked without a
/// vector of them: a chunk of tiny tasks has tens of thousands.
pub(crate) fn batch_items(batch: &[u8]) -> Result<BatchItems<'_>, String> {
    let mut count = 0;
    let mut rest = batch;
    while !rest.is_empty() {
        let (_, after) = split_item(rest)?;
        count += 1;
        rest = after;
    }
    Ok(BatchItems { rest: batch, count })
}

/// The first payload of `batch` and what follows it.
fn split_item(batch: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let (len, rest) = batch
        .split_first_chunk::<4>()
        .ok_or("batch ends inside a length prefix")?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err("batch item runs past the end".into());
    }
    Ok(rest.split_at(len))
}

/// The payloads of a checked batch, in order ([`batch_items`]).
pub(crate) struct BatchItems<'a> {
    rest: &'a [u8],
    count: usize,
}

impl<'a> Iterator for BatchItems<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.count == 0 {
            return None;
        }
        let (item, rest) = split_item(self.rest).ok()?;
        self.rest = rest;
        self.count -= 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.count, Some(self.count))
    }
}

impl ExactSizeIterator for BatchItems<'_> {}
