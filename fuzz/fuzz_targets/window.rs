//! The load-time window rewrite: any valid core module either gets a valid
//! window or a refusal, never a panic or an invalid module.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    // Half the inputs keep a valid header so the fuzzer reaches the
    // section parsers quickly.
    if data.first().is_some_and(|b| b % 2 == 0) {
        bytes.extend_from_slice(&data[1..]);
    } else {
        bytes = data.to_vec();
    }
    mpwasm::fuzzing::window_rewrite(&bytes);
});
