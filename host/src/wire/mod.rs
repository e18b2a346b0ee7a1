//! The wire between the parent and a worker process: one frame format, one
//! codec.
//!
//! A worker's stdin is one end of a Unix socketpair; the parent keeps the
//! other. Both directions carry frames:
//!
//! ```text
//! +----------------+-----------+------------------------------------+
//! | length: u32 LE | fds: u8   | bincode 2 (standard config) body   |
//! +----------------+-----------+------------------------------------+
//! ```
//!
//! `fds` is how many file descriptors travel with the frame (`SCM_RIGHTS`,
//! attached to its first byte); [`Channel`] pairs them up again.
//!
//! The parent sends [`ToWorker`] frames: `Init` once, then `Run`, `Names`,
//! `Main` or `Target` requests, one at a time. The worker answers each with
//! one [`FromWorker`] frame (`Ready` for `Init`). While a request runs, the
//! worker may send any number of [`Call`]s (upcalls: start a process, create
//! a queue, ...); the parent answers each with one [`Reply`] before anything
//! else. Frames from a worker are untrusted: a length above
//! [`MAX_FRAME_BYTES`](crate::limits::MAX_FRAME_BYTES), more descriptors than
//! [`MAX_FDS_PER_MESSAGE`], or a body that does not decode ends that worker's
//! connection, never the parent.

mod calls;
mod channel;

pub(crate) use calls::{
    Call, CallError, Container, JobItem, ManagerOp, ProcessDesc, RemoteOp, Reply, SyncKind,
};
pub(crate) use channel::Channel;

use std::borrow::Cow;
#[cfg(test)]
use std::io::Write;
use std::io::{self, Read};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::TaskErrorKind;
use crate::limits::MAX_FRAME_BYTES;
use crate::sys::ipc::MAX_FDS_PER_MESSAGE;

/// bincode's standard configuration, bounded by the frame limit.
const CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ MAX_FRAME_BYTES as usize }>,
> = bincode::config::standard().with_limit::<{ MAX_FRAME_BYTES as usize }>();

/// How payloads are encoded (mirrors the WIT `codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Codec {
    /// bincode 2, standard config.
    Bincode,
    /// JSON text.
    Json,
}

/// What a worker needs to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Init {
    /// The precompiled component to map.
    pub artifact: std::path::PathBuf,
    /// Index of the worker in its pool.
    pub id: u32,
    /// Process name shown to the guest.
    pub name: String,
    /// The pid of the mpwasm process that started this one, if a guest did
    /// (the OS parent is always the broker).
    pub parent: Option<(u32, String)>,
    /// Send the guest's stdout to stderr (keeps `mpwasm pool`'s stdout clean).
    pub stdout_to_stderr: bool,
    /// Limits and grants.
    pub sandbox: Sandbox,
    /// The guest has a window for shared regions: load it with the window
    /// engine ([`crate::load::CompiledGuest::has_window`]).
    pub window: bool,
}

/// What a worker's guest may use: limits, and capabilities granted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// Largest linear memory, in bytes.
    pub memory: Option<u64>,
    /// Deadline for one input (a chunk of `n` inputs gets `n` times it);
    /// the artifact must have been compiled with epoch checks.
    pub timeout: Option<std::time::Duration>,
    /// Fuel for one input (a chunk of `n` inputs gets `n` times it); the
    /// artifact must have been compiled with metering.
    pub fuel: Option<u64>,
    /// Host directories the guest may open.
    pub dirs: Vec<DirGrant>,
    /// Environment variables the guest sees.
    pub env: Vec<(String, String)>,
    /// Program arguments (`mpwasm run guest.wasm ARGS…`); the first is the
    /// program's name.
    pub args: Vec<String>,
    /// Largest queue item or pipe message, in bytes (`None`:
    /// [`MAX_MESSAGE_BYTES`](crate::limits::MAX_MESSAGE_BYTES)).
    pub max_message: Option<u64>,
    /// Most worker processes alive at once in one run (`None`:
    /// [`MAX_PROCESSES`](crate::limits::MAX_PROCESSES)).
    pub max_processes: Option<u32>,
    /// Most bytes the parent holds for the run's guests (`None`:
    /// [`MAX_HOST_MEMORY`](crate::limits::MAX_HOST_MEMORY)).
    pub host_memory: Option<u64>,
    /// Most bytes of shared memory (regions, queues' socket buffers) the
    /// run's guests may have at once (`None`:
    /// [`MAX_SHARED_MEMORY`](crate::limits::MAX_SHARED_MEMORY)).
    pub shared_memory: Option<u64>,
    /// Most queues, regions and primitives alive at once in a run (`None`: [`MAX_OBJECTS`](crate::limits::MAX_OBJECTS)).
    pub max_objects: Option<u32>,
}

impl Sandbox {
    /// The largest queue item, pipe message, process argument or task input.
    pub(crate) fn max_message_bytes(&self) -> u64 {
        self.max_message.unwrap_or(crate::limits::MAX_MESSAGE_BYTES)
    }

    /// The most worker processes alive at once in a run.
    pub(crate) fn max_live_processes(&self) -> u32 {
        self.max_processes.unwrap_or(crate::limits::MAX_PROCESSES)
    }

    /// The run's memory budget in the parent.
    pub(crate) fn host_memory_bytes(&self) -> u64 {
        self.host_memory.unwrap_or(crate::limits::MAX_HOST_MEMORY)
    }

    /// The run's cap on shared memory.
    pub(crate) fn shared_memory_bytes(&self) -> u64 {
        self.shared_memory
            .unwrap_or(crate::limits::MAX_SHARED_MEMORY)
    }

    /// The run's cap on live objects.
    pub(crate) fn max_live_objects(&self) -> u32 {
        self.max_objects.unwrap_or(crate::limits::MAX_OBJECTS)
    }
}

/// A host directory made visible to the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirGrant {
    /// The directory on the host.
    pub host: std::path::PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// Whether the guest may only read.
    pub read_only: bool,
}

/// Parent → worker.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToWorker<'a> {
    /// First frame: load the guest (boxed: the largest frame by far, sent
    /// once).
    Init(Box<Init>),
    /// Run `task` once per input.
    Run {
        /// Task name.
        task: Cow<'a, str>,
        /// Payload encoding.
        codec: Codec,
        /// Job-wide index of `inputs[0]`.
        first_index: u64,
        /// Encoded arguments, in the batch format ([`crate::batch`]).
        #[serde(
            serialize_with = "serde_bytes::serialize",
            deserialize_with = "owned_bytes"
        )]
        inputs: Cow<'a, [u8]>,
    },
    /// List the guest's tasks.
    Names,
    /// Run the guest's `main` (for `mpwasm run`) with the program arguments
    /// given in [`Sandbox::args`], as the process called `name`.
    Main {
        /// The main process's name (`MainProcess`).
        name: String,
    },
    /// Run `task` once on `args` as the target of a guest-started process;
    /// answered like `Run`.
    Target {
        /// Task name.
        task: String,
        /// The task's input, bincode-encoded.
        #[serde(with = "serde_bytes")]
        args: Vec<u8>,
    },
    /// The answer to the worker's last [`Call`].
    Reply(Reply),
}

/// Reads bytes into an owned `Cow` (frames are decoded from a buffer that
/// does not outlive the decode).
fn owned_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Cow<'static, [u8]>, D::Error> {
    serde_bytes::ByteBuf::deserialize(d).map(|b| Cow::Owned(b.into_vec()))
}

/// The outcome of the inputs of a `Run`, as the guest returned it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// One result per input in the batch format; failed inputs have an
    /// empty payload here.
    #[serde(with = "serde_bytes")]
    pub results: Vec<u8>,
    /// The failed inputs, by position in the `Run`.
    pub failures: Vec<(u32, Failure)>,
}

/// A failed input, before the pool knows its job-wide index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of failure.
    pub kind: TaskErrorKind,
    /// The message.
    pub message: String,
    /// The wasm backtrace, if any.
    pub backtrace: Option<String>,
}

/// Worker → parent.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromWorker {
    /// The guest is loaded and instantiated.
    Ready {
        /// The worker's OS pid.
        pid: u32,
    },
    /// Loading failed; the worker exits after this.
    InitFailed(String),
    /// Every input ran.
    Done(Outcome),
    /// The whole call failed before running any input (e.g. unknown task).
    Rejected(Failure),
    /// The instance trapped part-way. `completed` is the outcome of the
    /// inputs before the trap; `panic` is the panic message when the guest
    /// SDK reported one (then the input right after them panicked).
    Trapped {
        /// What kind of trap: `Trap`, `Timeout` or `ResourceLimit`.
        kind: TaskErrorKind,
        /// Outcome of the inputs that finished before the trap.
        completed: Outcome,
        /// The panic message, if the trap was a reported panic.
        panic: Option<String>,
        /// The trap, as wasmtime describes it.
        trap: String,
        /// The wasm backtrace.
        backtrace: Option<String>,
    },
    /// The guest's task names.
    Names(Vec<String>),
    /// The guest's `main` returned or exited with this code, or a process
    /// target called `exit` with it.
    Exited(i32),
    /// An upcall: the running guest asks the parent for something.
    Call(Call),
}

/// Header bytes before a frame's body: length and descriptor count.
const HEADER: usize = 5;

/// The most of a frame's announced length [`read_frame`] allocates before
/// the bytes arrive (a chunk of tiny tasks fits; a larger frame grows as
/// it is read).
const PRESIZE: usize = 4 << 20;

/// Encodes one frame (header and body) for a message sent with `fds`
/// descriptors.
///
/// # Errors
///
/// A body larger than the frame limit, or more descriptors than allowed.
pub(crate) fn encode_frame<T: Serialize>(msg: &T, fds: usize) -> io::Result<Vec<u8>> {
    // Measured first, so the buffer is allocated once at its size: a
    // chunk's frame is hundreds of KiB, and growing it by doubling would
    // copy it and touch twice the pages.
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(msg, &mut size, CONFIG)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let mut buf = Vec::with_capacity(HEADER + size.bytes_written);
    buf.resize(HEADER, 0);
    bincode::serde::encode_into_std_write(msg, &mut buf, CONFIG)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let len = u32::try_from(buf.len() - HEADER)
        .ok()
        .filter(|&n| n <= MAX_FRAME_BYTES)
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "frame exceeds MAX_FRAME_BYTES")
        })?;
    if fds > MAX_FDS_PER_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "too many descriptors",
        ));
    }
    buf[..4].copy_from_slice(&len.to_le_bytes());
    buf[4] = fds as u8;
    Ok(buf)
}

/// Writes one frame that carries no descriptors.
///
/// # Errors
///
/// I/O errors, or a body larger than the frame limit.
#[cfg(test)]
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, msg: &T) -> io::Result<()> {
    w.write_all(&encode_frame(msg, 0)?)?;
    w.flush()
}

/// Reads one frame: the message and how many descriptors came with it.
/// `Ok(None)` on a clean end of stream before a frame.
///
/// # Errors
///
/// I/O errors, a length above the frame limit, a descriptor count above
/// [`MAX_FDS_PER_MESSAGE`], or a body that does not decode as `T` (all
/// `InvalidData`): the peer must then be dropped.
pub fn read_frame<R: Read, T: DeserializeOwned>(r: &mut R) -> io::Result<Option<(T, usize)>> {
    let mut header = [0u8; HEADER];
    match r.read_exact(&mut header[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut header[1..])?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame length {len} exceeds the limit of {MAX_FRAME_BYTES} bytes"),
        ));
    }
    let fds = usize::from(header[4]);
    if fds > MAX_FDS_PER_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame claims {fds} descriptors"),
        ));
    }
    // Read through `take`, with at most `PRESIZE` allocated ahead, so a
    // lying length never allocates much more than what actually arrives.
    let mut body = Vec::with_capacity((len as usize).min(PRESIZE));
    r.take(u64::from(len)).read_to_end(&mut body)?;
    if body.len() != len as usize {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "truncated frame",
        ));
    }
    match bincode::serde::decode_from_slice(&body, CONFIG) {
        Ok((msg, used)) if used == body.len() => Ok(Some((msg, fds))),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "trailing bytes in frame",
        )),
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("undecodable frame: {e}"),
        )),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        let inputs = vec![1u8, 2, 3];
        let msg = ToWorker::Run {
            task: "square".into(),
            codec: Codec::Json,
            first_index: 7,
            inputs: Cow::Borrowed(&inputs),
        };
        write_frame(&mut buf, &msg).unwrap();
        let (back, fds): (ToWorker, _) = read_frame(&mut buf.as_slice()).unwrap().unwrap();
        assert_eq!(fds, 0);
        match back {
            ToWorker::Run {
                task,
                codec,
                first_index,
                inputs: got,
            } => {
                assert_eq!((&*task, codec, first_index), ("square", Codec::Json, 7));
                assert_eq!(&*got, &inputs[..]);
            }
            other => panic!("wrong frame {other:?}"),
        }
    }

    #[test]
    fn clean_eof_is_none() {
        let got: Option<(FromWorker, usize)> = read_frame(&mut &[][..]).unwrap();
        assert!(got.is_none());
    }

    #[test]
    fn huge_length_prefix_is_refused_without_allocating() {
        let mut frame = (1u32 << 30).to_le_bytes().to_vec();
        frame.push(0);
        let err = read_frame::<_, FromWorker>(&mut &frame[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn lying_length_is_a_truncated_frame() {
        let mut frame = 1000u32.to_le_bytes().to_vec();
        frame.extend_from_slice(&[0; 11]);
        let err = read_frame::<_, FromWorker>(&mut frame.as_slice()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn garbage_body_is_invalid_data() {
        let mut frame = 8u32.to_le_bytes().to_vec();
        frame.push(0);
        frame.extend_from_slice(&[0xff; 8]);
        let err = read_frame::<_, FromWorker>(&mut frame.as_slice()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn vec_length_claim_beyond_body_fails_cleanly() {
        // `Done` with a claimed 2^40 outcomes and no bytes behind it.
        let mut body = Vec::new();
        body.push(2u8); // variant index of Done
        body.push(253); // varint u64 marker
        body.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.push(0);
        frame.extend_from_slice(&body);
        assert!(read_frame::<_, FromWorker>(&mut frame.as_slice()).is_err());
    }

    #[test]
    fn too_many_descriptors_is_invalid_data() {
        let mut frame = 0u32.to_le_bytes().to_vec();
        frame.push(200);
        let err = read_frame::<_, FromWorker>(&mut frame.as_slice()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
