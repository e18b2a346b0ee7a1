//! The batch format: a chunk's payloads in one buffer.
//!
//! Each payload is a little-endian `u32` length followed by that many bytes,
//! back to back (the WIT `batch` type). One buffer per chunk, instead of one
//! allocation per input, is what makes tiny tasks cheap: the cost of a call
//! into the guest and of a frame on the wire no longer grows with the number
//! of inputs, only with their bytes.

use std::ops::Range;

/// Payloads in the batch format, with the offset where each one starts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    data: Vec<u8>,
    /// `starts[i]` is where item `i`'s length prefix begins; one extra entry
    /// marks the end.
    starts: Vec<usize>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch {
            data: Vec::new(),
            starts: vec![0],
        }
    }

    /// An empty batch with room for `items` payloads of `bytes` bytes in
    /// all (length prefixes included), so that filling it up to there
    /// moves nothing.
    pub fn with_capacity(items: usize, bytes: usize) -> Self {
        let mut starts = Vec::with_capacity(items + 1);
        starts.push(0);
        Batch {
            data: Vec::with_capacity(bytes),
            starts,
        }
    }

    /// Makes room for `items` more payloads of `bytes` more bytes.
    pub fn reserve(&mut self, items: usize, bytes: usize) {
        self.starts.reserve(items);
        self.data.reserve(bytes);
    }

    /// Number of payloads.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// Whether there are no payloads.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size of the buffer in bytes.
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }

    /// Appends one payload.
    ///
    /// # Panics
    ///
    /// If the payload is 4 GiB or larger (callers with untrusted sizes use
    /// [`Batch::push_with`], which returns an error instead).
    pub fn push(&mut self, payload: &[u8]) {
        let len = u32::try_from(payload.len()).expect("payload under 4 GiB");
        self.data.extend_from_slice(&len.to_le_bytes());
        self.data.extend_from_slice(payload);
        self.starts.push(self.data.len());
    }

    /// Appends one payload written by `encode`; on error nothing is appended.
    ///
    /// # Errors
    ///
    /// Whatever `encode` returns, or a payload over 4 GiB.
    pub fn push_with<E>(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
        too_big: impl FnOnce() -> E,
    ) -> Result<(), E> {
        let start = self.data.len();
        self.data.extend_from_slice(&[0; 4]);
        if let Err(e) = encode(&mut self.data) {
            self.data.truncate(start);
            return Err(e);
        }
        let Ok(len) = u32::try_from(self.data.len() - start - 4) else {
            self.data.truncate(start);
            return Err(too_big());
        };
        self.data[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.starts.push(self.data.len());
        Ok(())
    }

    /// Payload `i`.
    ///
    /// # Panics
    ///
    /// If `i >= self.len()`.
    pub fn get(&self, i: usize) -> &[u8] {
        &self.data[self.starts[i] + 4..self.starts[i + 1]]
    }

    /// The buffer holding payloads `range`, itself in the batch format.
    ///
    /// # Panics
    ///
    /// If the range is out of bounds.
    pub fn encoded(&self, range: Range<usize>) -> &[u8] {
        &self.data[self.starts[range.start]..self.starts[range.end]]
    }

    /// Appends payloads `range` of `other`.
    pub fn extend_from(&mut self, other: &Batch, range: Range<usize>) {
        let base = self.data.len();
        let from = other.starts[range.start];
        self.data.extend_from_slice(other.encoded(range.clone()));
        self.starts.extend(
            other.starts[range.start + 1..=range.end]
                .iter()
                .map(|s| s - from + base),
        );
    }

    /// Reads a buffer in the batch format (it came from a guest: nothing
    /// about it is trusted; every payload has a 4-byte prefix, so a buffer
    /// of `n` bytes holds at most `n / 4` of them).
    ///
    /// # Errors
    ///
    /// A description of the first way it is malformed.
    pub fn parse(data: Vec<u8>) -> Result<Batch, String> {
        let mut starts = Vec::with_capacity(data.len() / 4 + 1);
        starts.push(0);
        for end in ends(&data) {
            starts.push(end?);
        }
        Ok(Batch { data, starts })
    }
}

/// Where each payload of an encoded batch ends, in order; an `Err` (then
/// nothing more) where the buffer is malformed.
fn ends(data: &[u8]) -> impl Iterator<Item = Result<usize, &'static str>> + '_ {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at >= data.len() {
            return None;
        }
        let step = match data.get(at..at + 4) {
            None => Err("batch ends inside a length prefix"),
            Some(prefix) => {
                let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize;
                at.checked_add(4 + len)
                    .filter(|&end| end <= data.len())
                    .ok_or("batch item runs past the end")
            }
        };
        // After an error, stop.
        at = *step.as_ref().unwrap_or(&usize::MAX);
        Some(step)
    })
}

/// Number of payloads in an encoded batch that is known to be well formed
/// (one the parent built); stops at the first malformed prefix.
pub(crate) fn count(data: &[u8]) -> u64 {
    ends(data).take_while(Result::is_ok).count() as u64
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn push_get_and_parse_round_trip() {
        let mut b = Batch::new();
        b.push(b"one");
        b.push(b"");
        b.push_with(
            |out| {
                out.extend_from_slice(b"three");
                Ok::<_, ()>(())
            },
            || (),
        )
        .unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(
            (b.get(0), b.get(1), b.get(2)),
            (&b"one"[..], &b""[..], &b"three"[..])
        );
        let back = Batch::parse(b.encoded(0..3).to_vec()).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    fn failed_push_leaves_no_trace() {
        let mut b = Batch::new();
        b.push(b"x");
        assert!(b
            .push_with(
                |out| {
                    out.push(9);
                    Err("no")
                },
                || "big"
            )
            .is_err());
        assert_eq!(b.len(), 1);
        assert_eq!(b.byte_len(), 5);
    }

    #[test]
    fn sub_batches_and_extend() {
        let mut b = Batch::new();
        for p in [&b"a"[..], b"bb", b"ccc", b"dddd"] {
            b.push(p);
        }
        let mut c = Batch::new();
        c.push(b"z");
        c.extend_from(&b, 1..3);
        assert_eq!(c.len(), 3);
        assert_eq!(
            (c.get(0), c.get(1), c.get(2)),
            (&b"z"[..], &b"bb"[..], &b"ccc"[..])
        );
        assert_eq!(
            Batch::parse(b.encoded(2..4).to_vec()).unwrap().get(1),
            b"dddd"
        );
    }

    #[test]
    fn hostile_buffers_are_rejected() {
        assert!(Batch::parse(vec![1, 0, 0]).is_err(), "short prefix");
        assert!(
            Batch::parse(vec![9, 0, 0, 0, 1]).is_err(),
            "item past the end"
        );
        assert!(
            Batch::parse(vec![0xff, 0xff, 0xff, 0xff]).is_err(),
            "4 GiB claim"
        );
        assert_eq!(Batch::parse(vec![0, 0, 0, 0, 0, 0, 0, 0]).unwrap().len(), 2);
        assert!(Batch::parse(Vec::new()).unwrap().is_empty());
        assert_eq!(
            count(&[1, 0, 0, 0, 7, 0, 0]),
            1,
            "count stops at the malformed tail"
        );
    }
}
