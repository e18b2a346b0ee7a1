//! What travels through the cluster's streams: chunks and results, in
//! bincode. Both come from other machines, so both are decoded under a
//! size limit and checked before use.

use serde::{Deserialize, Serialize};

use crate::wire::{Codec, Failure};

/// The largest chunk or result message decoded (NATS itself caps messages
/// at its `max_payload`, 1 MiB by default, 64 MiB at most).
pub(crate) const MAX_CLUSTER_MESSAGE: usize = 64 << 20;

const CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_CLUSTER_MESSAGE>,
> = bincode::config::standard().with_limit::<MAX_CLUSTER_MESSAGE>();

/// What a caller asks of a host's sandbox; the host's own options are the
/// ceiling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Limits {
    pub(crate) memory: Option<u64>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) fuel: Option<u64>,
    pub(crate) retries: u32,
}

/// One chunk of a run's inputs.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChunkMsg {
    /// The chunk's number in its run (its id is `RUN.N`).
    pub(crate) chunk: u64,
    /// BLAKE3 of the guest's bytes, hex.
    pub(crate) guest: String,
    pub(crate) task: String,
    pub(crate) codec: Codec,
    pub(crate) limits: Limits,
    /// The caller's run whose queues the chunk's tasks may use
    /// (`crate::cluster::queue`); empty if it shares none.
    pub(crate) queues: String,
    /// The inputs, in the batch format.
    #[serde(with = "serde_bytes")]
    pub(crate) inputs: Vec<u8>,
}

/// A chunk's outcome.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ResultMsg {
    pub(crate) chunk: u64,
    /// One result per input (empty for a failed one), in the batch format.
    #[serde(with = "serde_bytes")]
    pub(crate) results: Vec<u8>,
    /// Failed inputs by position in the chunk, ascending.
    pub(crate) failures: Vec<(u32, Failure)>,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, CONFIG).expect("encoding into a Vec cannot fail")
}

/// Decodes untrusted bytes: the whole message, within the size limit.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.len() > MAX_CLUSTER_MESSAGE {
        return Err(format!("a message of {} bytes", bytes.len()));
    }
    match bincode::serde::decode_from_slice(bytes, CONFIG) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok(_) => Err("trailing bytes".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_chunk_round_trips_and_garbage_is_refused() {
        let msg = ChunkMsg {
            chunk: 7,
            guest: "ab".into(),
            task: "square".into(),
            codec: Codec::Json,
            limits: Limits::default(),
            queues: String::new(),
            inputs: vec![1, 0, 0, 0, b'3'],
        };
        let bytes = encode(&msg);
        let back: ChunkMsg = decode(&bytes).unwrap();
        assert_eq!((back.chunk, back.inputs), (7, msg.inputs));
        assert!(decode::<ChunkMsg>(&bytes[..bytes.len() - 1]).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode::<ChunkMsg>(&long).is_err());
        // A length prefix claiming far more than the limit.
        assert!(decode::<ResultMsg>(&[7, 0xfc, 0xff, 0xff, 0xff, 0x7f]).is_err());
    }
}
