//! Unit tests of the parts that need no host: timeouts, payload framing,
//! error text. (Everything else calls the host; the integration tests run it
//! through `mpwasm run`.)

use std::time::Duration;

use crate::bindings::types;
use crate::{codec, time, Error};

#[test]
fn timeouts_round_up_to_whole_milliseconds() {
    assert_eq!(time::millis(None), None);
    assert_eq!(time::millis(Some(Duration::ZERO)), Some(0));
    assert_eq!(time::millis(Some(Duration::from_nanos(1))), Some(1));
    assert_eq!(time::millis(Some(Duration::from_micros(1))), Some(1));
    assert_eq!(time::millis(Some(Duration::from_millis(5))), Some(5));
    assert_eq!(time::millis(Some(Duration::from_micros(5_001))), Some(6));
    assert_eq!(time::millis(Some(Duration::MAX)), Some(u64::MAX));
}

#[test]
fn deadlines_beyond_the_clock_wait_forever() {
    assert_eq!(time::deadline(None), None);
    assert_eq!(time::deadline(Some(Duration::MAX)), None);
    let soon = time::deadline(Some(Duration::ZERO));
    assert_eq!(time::remaining(soon), Some(Duration::ZERO));
}

#[test]
fn payloads_round_trip_through_a_batch() {
    let mut batch = Vec::new();
    codec::push_payload(&mut batch, &(1_u64, "one")).unwrap();
    codec::push_payload(&mut batch, &()).unwrap();
    codec::push_payload(&mut batch, &vec![7_u8; 300]).unwrap();
    let items = codec::batch_items(&batch).unwrap();
    assert_eq!(items.len(), 3);
    let first: (u64, String) = codec::from_bytes(items[0]).unwrap();
    assert_eq!(first, (1, "one".to_string()));
    assert!(items[1].is_empty());
    assert_eq!(
        codec::from_bytes::<Vec<u8>>(items[2]).unwrap(),
        vec![7; 300]
    );
}

#[test]
fn values_with_trailing_bytes_are_refused() {
    let mut bytes = codec::to_bytes(&5_u32).unwrap();
    bytes.push(0);
    assert!(matches!(
        codec::from_bytes::<u32>(&bytes),
        Err(Error::Codec(_))
    ));
}

#[test]
fn host_errors_keep_their_meaning() {
    assert_eq!(Error::from(types::Error::Empty), Error::Empty);
    assert_eq!(Error::from(types::Error::Eof), Error::Eof);
    assert_eq!(
        Error::from(types::Error::Limit("process cap".into())),
        Error::Limit("process cap".into())
    );
}

#[test]
fn errors_display_in_lowercase_with_the_python_name() {
    assert_eq!(Error::Empty.to_string(), "queue is empty (queue.Empty)");
    assert_eq!(Error::Full.to_string(), "queue is full (queue.Full)");
    let task = Error::Task {
        index: 3,
        kind: "panic".into(),
        message: "boom".into(),
    };
    assert_eq!(task.to_string(), "task input 3 failed (panic): boom");
    assert_eq!(
        Error::BufferTooShort(vec![0; 10]).to_string(),
        "buffer too short for a 10-byte message (BufferTooShort)"
    );
}

#[test]
fn serde_messages_pass_through_bincode_unwrapped() {
    struct Refuses;
    impl serde::Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("no token for you"))
        }
    }
    assert_eq!(
        codec::to_bytes(&Refuses),
        Err(Error::Codec("no token for you".into()))
    );
}
