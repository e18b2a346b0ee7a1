//! Handles inside serde values.
//!
//! A queue, connection or process handle is an index into this instance's
//! resource table, meaningless in any other process. So a handle serializes
//! as a *capability token*: `share()` asks the host for a token standing for
//! the object, and the token is written as a newtype struct named after the
//! handle type (`mpwasm::Queue`, ...) holding a `u64`. Deserializing reads
//! the token and redeems it with the interface's `adopt`, which gives the
//! receiving process a handle of its own. That is how handles travel in
//! process arguments, queue items and pipe messages; a token the host never
//! granted to the receiver fails to decode.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{self, Serializer};

use crate::bindings::types;
use crate::error::Error;

/// Writes the token `share` returned, as the newtype struct `name`.
pub(crate) fn serialize<S: Serializer>(
    serializer: S,
    name: &'static str,
    share: Result<types::Capability, types::Error>,
) -> Result<S::Ok, S::Error> {
    let token = share.map_err(|e| {
        <S::Error as ser::Error>::custom(format_args!("cannot share {name}: {}", Error::from(e)))
    })?;
    serializer.serialize_newtype_struct(name, &token)
}

/// Reads a token written by [`serialize`] and redeems it with `adopt`.
pub(crate) fn deserialize<'de, D, H>(
    deserializer: D,
    name: &'static str,
    adopt: impl FnOnce(types::Capability) -> Result<H, types::Error>,
) -> Result<H, D::Error>
where
    D: Deserializer<'de>,
{
    let token = deserializer.deserialize_newtype_struct(name, Token(name))?;
    adopt(token).map_err(|e| {
        <D::Error as de::Error>::custom(format_args!(
            "cannot adopt a {name} token: {}",
            Error::from(e)
        ))
    })
}

/// Reads the `u64` inside the newtype struct (or bare, for formats that
/// write newtypes transparently, such as JSON).
struct Token(&'static str);

impl<'de> Visitor<'de> for Token {
    type Value = types::Capability;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} capability token", self.0)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        u64::deserialize(d)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v)
    }
}
