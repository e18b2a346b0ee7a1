//! The output contract of `mpwasm pool`: exactly one line per input, which a
//! guest cannot break.
//!
//! A guest's JSON result is untrusted bytes. Before it is written it is
//! parsed (`serde_json`: whole input, nesting and size bounded by the wire
//! frame it came in) and written back compactly: whitespace outside strings
//! goes, so a value spread over several lines takes one. Bytes that are not
//! one valid JSON value in UTF-8 are no result at all: the caller reports
//! them as that input's `bad_output` failure.
//!
//! A line is the host's report of a failure if and only if it is an object
//! with an `"error"` key. A result that would look like one (an object with
//! an `"error"` key), or that looks like the wrapper itself (an object whose
//! only key is `"result"`), is written wrapped as `{"result":VALUE}`; every
//! other result is written as it is. A consumer reads a line as: object
//! with `"error"` → failure; object with the single key `"result"` → its
//! value; anything else → the value itself.

use std::fmt;
use std::io::{self, Write};

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

/// Writes a guest's JSON result as one compact line (see the module docs),
/// or returns why it is not one JSON value (nothing written then).
///
/// # Errors
///
/// [`LineError::Invalid`] for bytes that are not one JSON value in UTF-8;
/// [`LineError::Io`] if `out` fails.
pub(crate) fn write_result(out: &mut impl Write, bytes: &[u8]) -> Result<(), LineError> {
    let text = std::str::from_utf8(bytes).map_err(|e| LineError::Invalid(e.to_string()))?;
    let wrap = looks_like_host_line(text).map_err(|e| LineError::Invalid(e.to_string()))?;
    if wrap {
        out.write_all(b"{\"result\":")?;
    }
    write_compact(out, text.as_bytes())?;
    if wrap {
        out.write_all(b"}")?;
    }
    out.write_all(b"\n")?;
    Ok(())
}

/// Why a result could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LineError {
    /// The guest's bytes are not one JSON value.
    #[error("{0}")]
    Invalid(String),
    /// Standard output failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Parses `text` as exactly one JSON value and says whether a consumer
/// could take it for an error line or a wrapped result.
fn looks_like_host_line(text: &str) -> serde_json::Result<bool> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str::<TopKeys>(text).map(|k| k.error || (k.count == 1 && k.result))
    } else {
        serde_json::from_str::<IgnoredAny>(text).map(|_| false)
    }
}

/// Copies JSON text that was validated by `serde_json` without the
/// whitespace outside strings. (A valid string holds no raw control
/// characters, so a line break can only be outside one.)
fn write_compact(out: &mut impl Write, json: &[u8]) -> io::Result<()> {
    let (mut in_string, mut escaped, mut run_start) = (false, false, 0);
    for (i, &b) in json.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            out.write_all(&json[run_start..i])?;
            run_start = i + 1;
        }
    }
    out.write_all(&json[run_start..])
}

/// The top-level keys of a JSON object that matter to the output contract.
#[derive(Default)]
struct TopKeys {
    count: usize,
    error: bool,
    result: bool,
}

impl<'de> Deserialize<'de> for TopKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TopKeysVisitor)
    }
}

struct TopKeysVisitor;

impl<'de> Visitor<'de> for TopKeysVisitor {
    type Value = TopKeys;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopKeys, A::Error> {
        let mut keys = TopKeys::default();
        while let Some(key) = map.next_key::<Key>()? {
            keys.count += 1;
            keys.error |= key == Key::Error;
            keys.result |= key == Key::Result;
            map.next_value::<IgnoredAny>()?;
        }
        Ok(keys)
    }
}

/// An object key, as far as the output contract cares (no allocation).
#[derive(PartialEq)]
enum Key {
    Error,
    Result,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "error" => Key::Error,
            "result" => Key::Result,
            _ => Key::Other,
        })
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn line(bytes: &[u8]) -> Result<String, String> {
        let mut out = Vec::new();
        match write_result(&mut out, bytes) {
            Ok(()) => Ok(String::from_utf8(out).unwrap()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn results_become_one_compact_line() {
        assert_eq!(line(b"[1,\n2,\n3]").unwrap(), "[1,2,3]\n");
        assert_eq!(line(b" 42 \r\n").unwrap(), "42\n");
        assert_eq!(
            line(b"{ \"a b\" :\n [\"c\\\" d\\\\\", 1e400] }").unwrap(),
            "{\"a b\":[\"c\\\" d\\\\\",1e400]}\n",
            "strings and number text are kept as they are"
        );
    }

    #[test]
    fn what_is_not_one_json_value_is_refused() {
        for bad in [&b"1 2"[..], b"{\"a\":", b"\"\xff\"", b"", b"\n", b"[1,]"] {
            assert!(line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn results_shaped_like_host_lines_are_wrapped() {
        assert_eq!(
            line(br#"{"error": "x", "kind": "panic", "index": 3}"#).unwrap(),
            "{\"result\":{\"error\":\"x\",\"kind\":\"panic\",\"index\":3}}\n"
        );
        assert_eq!(
            line(br#"{"result":1}"#).unwrap(),
            "{\"result\":{\"result\":1}}\n"
        );
        assert_eq!(
            line(br#"{"\u0065rror":1}"#).unwrap(),
            "{\"result\":{\"\\u0065rror\":1}}\n",
            "an escaped key is the same key"
        );
        assert_eq!(
            line(br#"{"result":1,"n":2}"#).unwrap(),
            "{\"result\":1,\"n\":2}\n"
        );
        assert_eq!(line(br#"["error"]"#).unwrap(), "[\"error\"]\n");
    }
}
