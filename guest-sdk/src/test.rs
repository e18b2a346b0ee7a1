//! Unit tests of the parts that need no host: timeouts, payload framing,
//! error text, scalar encodings, range checks, the shareable list layout. (Everything else calls the host; the integration tests run it
//! through `mpwasm run`.)

use std::time::Duration;

use crate::bindings::types;
use crate::shared_memory::layout;
use crate::value::{self, check_range};
use crate::{codec, time, Error, Item, Scalar};

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
    let items: Vec<&[u8]> = codec::batch_items(&batch).unwrap().collect();
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
fn a_malformed_batch_is_refused_before_any_payload() {
    let mut batch = Vec::new();
    codec::push_payload(&mut batch, &1_u32).unwrap();
    let whole = batch.len();
    batch.extend_from_slice(&9_u32.to_le_bytes());
    batch.push(0);
    assert!(codec::batch_items(&batch).is_err(), "runs past the end");
    assert!(
        codec::batch_items(&batch[..whole + 2]).is_err(),
        "cut prefix"
    );
    assert_eq!(codec::batch_items(&batch[..whole]).unwrap().len(), 1);
    assert_eq!(codec::batch_items(&[]).unwrap().len(), 0);
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
fn a_send_inside_a_send_encodes_into_a_buffer_of_its_own() {
    /// Sends another message while it is being encoded, as a capability
    /// that asks the host for a token would.
    struct SendsWhileEncoded(std::cell::RefCell<Vec<Vec<u8>>>);
    impl serde::Serialize for SendsWhileEncoded {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let inner = codec::with_bytes(&"inner", <[u8]>::to_vec).unwrap();
            self.0.borrow_mut().push(inner);
            s.serialize_u32(7)
        }
    }
    let nested = SendsWhileEncoded(Default::default());
    let outer = codec::with_bytes(&nested, <[u8]>::to_vec).unwrap();
    assert_eq!(outer, codec::to_bytes(&7_u32).unwrap());
    assert_eq!(*nested.0.borrow(), [codec::to_bytes(&"inner").unwrap()]);
    // The kept buffer holds no trace of an earlier, longer message.
    let long = codec::with_bytes(&vec![9_u64; 100], <[u8]>::to_vec).unwrap();
    assert_eq!(long, codec::to_bytes(&vec![9_u64; 100]).unwrap());
    let short = codec::with_bytes(&1_u8, <[u8]>::to_vec).unwrap();
    assert_eq!(short, [1]);
    assert_eq!(
        codec::with_bytes(&Refuses, |_| unreachable!("not sent")),
        Err(Error::Codec("no token for you".into()))
    );
}

/// A value whose serialization fails with a serde message.
struct Refuses;

impl serde::Serialize for Refuses {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("no token for you"))
    }
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
    assert_eq!(
        codec::to_bytes(&Refuses),
        Err(Error::Codec("no token for you".into()))
    );
}

#[test]
fn scalars_round_trip_through_their_bits() {
    fn round_trip<T: Scalar + PartialEq>(values: &[T]) {
        for &v in values {
            // The host zero-extends what it loads: only the low bytes count.
            let width_bits = u32::from(T::WIDTH) * 8;
            let bits = v.to_bits();
            let loaded = if width_bits == 64 {
                bits
            } else {
                bits & ((1_i64 << width_bits) - 1)
            };
            assert_eq!(T::from_bits(loaded), v, "{v:?}");
        }
        let encoded = value::encode(values);
        assert_eq!(encoded.len(), values.len() * usize::from(T::WIDTH));
        assert_eq!(value::decode::<T>(&encoded), values);
    }
    round_trip(&[i8::MIN, -1, 0, i8::MAX]);
    round_trip(&[0_u8, 255]);
    round_trip(&[i16::MIN, -2, i16::MAX]);
    round_trip(&[u16::MAX, 1]);
    round_trip(&[i32::MIN, -3, i32::MAX]);
    round_trip(&[u32::MAX, 7]);
    round_trip(&[i64::MIN, -4, i64::MAX]);
    round_trip(&[u64::MAX, 9]);
    round_trip(&[-1.5_f32, 0.0, f32::MAX]);
    round_trip(&[-2.25_f64, f64::MIN_POSITIVE]);
    round_trip(&[true, false]);
}

#[test]
fn typecodes_are_cpythons() {
    let codes = [
        i8::TYPECODE,
        u8::TYPECODE,
        i16::TYPECODE,
        u16::TYPECODE,
        i32::TYPECODE,
        u32::TYPECODE,
        i64::TYPECODE,
        u64::TYPECODE,
        f32::TYPECODE,
        f64::TYPECODE,
        bool::TYPECODE,
    ];
    assert_eq!(
        codes,
        ['b', 'B', 'h', 'H', 'i', 'I', 'q', 'Q', 'f', 'd', '?']
    );
}

#[test]
fn ranges_are_checked_against_the_length() {
    assert_eq!(check_range(&(0..10), 10), Ok(0..10));
    assert_eq!(check_range(&(10..10), 10), Ok(10..10));
    assert_eq!(
        check_range(&(3..12), 10),
        Err(Error::IndexOutOfRange { index: 10, len: 10 })
    );
    assert_eq!(
        check_range(&(11..12), 10),
        Err(Error::IndexOutOfRange { index: 11, len: 10 })
    );
    // Ends before it starts: empty, as a Python slice, if it starts inside.
    let reversed = |start, end| std::ops::Range { start, end };
    assert_eq!(check_range(&reversed(5, 3), 10), Ok(5..5));
    assert!(check_range(&reversed(12, 3), 10).is_err());
}

#[test]
fn index_errors_name_pythons_exception() {
    assert_eq!(
        Error::IndexOutOfRange { index: 4, len: 4 }.to_string(),
        "index 4 out of range for length 4 (IndexError)"
    );
}

#[test]
fn shareable_list_slots_are_sized_like_pythons() {
    assert_eq!(layout::capacity(&None), 8);
    assert_eq!(layout::capacity(&Some(Item::Int(1))), 8);
    assert_eq!(layout::capacity(&Some(Item::Bool(true))), 8);
    assert_eq!(layout::capacity(&Some(Item::Str("123456789".into()))), 16);
    assert_eq!(layout::capacity(&Some(Item::Bytes(vec![0; 16]))), 16);
}

#[test]
fn shareable_list_items_round_trip_through_their_slots() {
    let items = vec![
        Some(Item::Int(-7)),
        Some(Item::Float(2.5)),
        Some(Item::Bool(true)),
        Some(Item::Str("héllo".into())),
        Some(Item::Bytes(vec![0, 1, 2])),
        None,
    ];
    let (slots, block) = layout::block(&items).unwrap();
    assert_eq!(layout::read_count(&block).unwrap(), items.len());
    let table = &block[layout::HEADER..layout::HEADER + 4 * items.len()];
    let capacities = layout::read_capacities(table);
    assert_eq!(layout::slots(&capacities), (slots.clone(), block.len()));
    for (item, slot) in items.iter().zip(&slots) {
        let bytes = &block[slot.offset..slot.offset + layout::SLOT_HEADER + slot.capacity];
        assert_eq!(&layout::read_slot(bytes).unwrap(), item);
    }
}

#[test]
fn shareable_list_items_must_fit_their_slot() {
    let (slots, _) = layout::block(&[Some(Item::Str("abc".into()))]).unwrap();
    let fits = Some(Item::Str("12345678".into()));
    assert!(layout::slot_bytes(&fits, slots[0]).is_ok());
    let too_long = Some(Item::Str("123456789".into()));
    assert!(matches!(
        layout::slot_bytes(&too_long, slots[0]),
        Err(Error::Other(_))
    ));
    // Another type of the same size replaces it.
    assert!(layout::slot_bytes(&Some(Item::Float(1.0)), slots[0]).is_ok());
}

#[test]
fn other_blocks_are_not_shareable_lists() {
    assert!(layout::read_count(&[0; 8]).is_err());
    assert!(layout::read_slot(&[9, 0, 0, 0, 0]).is_err());
    assert!(layout::read_slot(&[4, 5, 0, 0, 0, b'a']).is_err());
}

#[test]
fn task_kinds_are_distinct_snake_case_names() {
    let mut names = crate::task_kind::ALL.to_vec();
    for name in &names {
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{name}"
        );
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), crate::task_kind::ALL.len());
}

#[test]
fn a_short_bincode_input_says_so_in_words() {
    let why = crate::codec::decode::<String>(types::Codec::Bincode, &[5]).unwrap_err();
    assert!(why.starts_with("too short (1 bytes)"), "{why}");
}
