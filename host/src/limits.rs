//! Every size mpwasm accepts from a guest, a worker process or an input
//! file, as named constants. Anything larger is refused, never allocated.

/// Largest guest file `mpwasm` will read (256 MiB).
pub const MAX_GUEST_FILE_BYTES: u64 = 256 << 20;

/// Largest frame accepted on a parent/worker channel (256 MiB). A length
/// prefix above it ends the connection: the peer is broken or hostile.
pub const MAX_FRAME_BYTES: u32 = 256 << 20;

/// Largest chunk the pool sends in one frame, in payload bytes (32 MiB); a
/// chunk is cut short of its item count when its inputs reach this size.
pub const MAX_CHUNK_BYTES: usize = 32 << 20;

/// Longest guest log message kept (64 KiB); the rest is cut.
pub const MAX_LOG_BYTES: usize = 64 << 10;

/// Largest chunk size the pool picks by itself when the input length is
/// unknown (streaming `imap`, `mpwasm pool` from a pipe).
pub const MAX_AUTO_CHUNK: usize = 4096;

/// Largest queue item or pipe message by default (64 MiB); see
/// `PoolBuilder::max_message`.
pub const MAX_MESSAGE_BYTES: u64 = 64 << 20;

/// Most guest-started processes alive at once in one run by default; see
/// `PoolBuilder::max_processes`.
pub const MAX_PROCESSES: u32 = 256;

/// Items of this size or more do not travel in a queue's packet: the
/// broker keeps them (charged to the run's budget) and the packet carries
/// their key. A packet of a packet-mode pipe is at most one page, and
/// holds a tag byte before the item (4095 bytes).
pub const QUEUE_INLINE_MAX: usize = 4095;

/// What the run's budget is charged for each queue item the broker keeps
/// (spilled or stored) beside its bytes: its entry and bookkeeping.
pub const QUEUE_ITEM_COST: u64 = 64;

/// Largest shared memory region (`Value`, `Array`, `SharedMemory`) a guest
/// may create (1 GiB).
pub const MAX_REGION_BYTES: u64 = 1 << 30;

/// Most bytes one manager list or dict may hold (256 MiB): a guest that
/// appends forever gets a `limit` error, not the parent's memory.
pub const MAX_MANAGER_BYTES: usize = 256 << 20;

/// Most results one guest pool `job.next` call hands back (its bytes are
/// bounded too, by [`MAX_JOB_REPLY_BYTES`]): many small results travel in
/// one upcall instead of one each.
pub const MAX_JOB_ITEMS: usize = 4096;

/// Past this many payload bytes (8 MiB), a guest pool `job.next` reply
/// takes no further result; the first one always goes, whatever its size
/// (results are bounded by the frame limit).
pub const MAX_JOB_REPLY_BYTES: usize = 8 << 20;

/// What the parent may hold for one run's guests by default (1 GiB): see
/// `PoolBuilder::host_memory` and the broker's budget.
pub const MAX_HOST_MEMORY: u64 = 1 << 30;

/// Shared memory one run's guests may have at once by default (1 GiB):
/// regions (`Value`, `Array`, `SharedMemory`) and queues' socket buffers;
/// see `PoolBuilder::shared_memory`.
pub const MAX_SHARED_MEMORY: u64 = 1 << 30;

/// Queues, regions, locks and other primitives (each holds descriptors in
/// the parent) one run may have alive at once by default; see
/// `PoolBuilder::max_objects`.
pub const MAX_OBJECTS: u32 = 4096;

/// A queue pipe's size, as asked of the kernel (1 MiB, an unprivileged
/// user's `pipe-max-size`): 256 packets of one page each, the most unread
/// items of one queue the kernel holds, charged to the run's shared memory.
/// Beyond them, puts spill to the broker, charged to the run's host memory.
pub const QUEUE_PIPE_BYTES: usize = 1 << 20;

/// What a pipe end whose buffers a large message enlarged is charged of
/// the run's shared memory while it lives (8 MiB: the most the kernel
/// gives for the 4 MiB asked).
pub const PIPE_BUFFER_COST: u64 = 8 << 20;

/// What the broker charges the run's budget for each object it keeps
/// (its entry, ids, descriptors' bookkeeping), in bytes.
pub const OBJECT_COST: u64 = 512;

/// What each reference in transit (a `share` not yet redeemed) costs the
/// run's budget, in bytes.
pub const TOKEN_COST: u64 = 64;

/// Most connection ends one process may have in transit (shared, not yet
/// redeemed); each holds a descriptor in the parent.
pub const MAX_CONNECTIONS_IN_TRANSIT: usize = 256;

/// A worker keeps the arguments of processes described and not yet
/// started up to this many times `--max-message` in all: a `start` of one
/// described past it fails with a `limit` error.
pub const UNSTARTED_ARGS_FACTOR: u64 = 2;

/// Longest process name, in bytes.
pub const MAX_NAME_BYTES: usize = 4096;

/// Largest Python program source `mpwasm` accepts (it travels to every
/// worker process of the run).
pub const MAX_PYTHON_SOURCE_BYTES: u64 = 4 << 20;
