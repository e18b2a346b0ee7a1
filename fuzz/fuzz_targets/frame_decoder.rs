//! Frames from a (hostile) worker: the decoder must return, never panic or
//! allocate past the frame limit; result batches inside must parse safely.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = mpwasm::fuzzing::worker_frames(data);
    let _ = mpwasm::fuzzing::result_batch(data);
});
