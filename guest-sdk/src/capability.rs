//! Handles inside serde values.
//!
//! A queue, connection or process handle is an index into this instance's
//! resource table, meaningless in any other process. So a handle serializes
//! as a *capability token*: `share()` asks the host for a token standing for
//! the object, and the token is written as a newtype struct named after the
//! handle type (`mpwasm::Queue`, ...) holding a `u64`. Deserializing reads
//! the token and redeems it with the interface's `adopt`, which gives the
//! receiving process a handle of its own. That is how handles travel in
//! process arguments, queue items and pipe messages. Tokens are bearer
//! capabilities within a run: any process presenting one may redeem it
//! while its object lives; a token the host never minted, or of an object
//! that is gone, fails to decode.
//!
//! The shared-state handles ([`Handle`]) write their token followed by what
//! the receiver needs to check it got the object it expects: which sync
//! primitive, which scalar type and length, which container. Decoding a
//! `Lock` token as an `Event` fails there, not later.

use std::fmt;
use std::rc::Rc;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{self, Serialize, Serializer};

use crate::bindings::{manager, shared, sync, types};
use crate::error::Error;

std::thread_local! {
    /// The tokens written while [`collecting`] runs (guests have one
    /// thread).
    static WRITTEN: std::cell::RefCell<Option<Vec<types::Capability>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `encode` and returns what it returned with the tokens it wrote:
/// a manager container storing the value then keeps their objects.
pub(crate) fn collecting<T>(encode: impl FnOnce() -> T) -> (T, Vec<types::Capability>) {
    let outer = WRITTEN.with(|w| w.borrow_mut().replace(Vec::new()));
    let value = encode();
    let tokens = WRITTEN.with(|w| std::mem::replace(&mut *w.borrow_mut(), outer));
    (value, tokens.unwrap_or_default())
}

/// Writes the token `share` returned, as the newtype struct `name`.
pub(crate) fn serialize<S: Serializer>(
    serializer: S,
    name: &'static str,
    share: Result<types::Capability, types::Error>,
) -> Result<S::Ok, S::Error> {
    let token = share.map_err(|e| {
        <S::Error as ser::Error>::custom(format_args!("cannot share {name}: {}", Error::from(e)))
    })?;
    WRITTEN.with(|w| {
        if let Some(written) = w.borrow_mut().as_mut() {
            written.push(token);
        }
    });
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

/// A host resource that travels as a token: the interface's `share` and
/// `adopt`, and the name its token is written under.
pub(crate) trait Shareable: Sized {
    /// The newtype struct name of the token.
    const NAME: &'static str;
    /// A token for this handle (the resource's `share`).
    fn share(&self) -> Result<types::Capability, types::Error>;
    /// Redeems a token (the interface's `adopt`).
    fn adopt(token: types::Capability) -> Result<Self, types::Error>;
}

/// A host resource shared by every clone of a handle in this process, and
/// written as its token: what the shared-state handles (regions, sync
/// objects, manager proxies) are built on.
pub(crate) struct Handle<H>(Rc<H>);

impl<H> Handle<H> {
    /// Wraps a resource the host just gave this process.
    pub(crate) fn new(host: H) -> Handle<H> {
        Handle(Rc::new(host))
    }
}

impl<H> std::ops::Deref for Handle<H> {
    type Target = H;

    fn deref(&self) -> &H {
        &self.0
    }
}

impl<H> Clone for Handle<H> {
    fn clone(&self) -> Self {
        Handle(Rc::clone(&self.0))
    }
}

impl<H: Shareable> Serialize for Handle<H> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize(serializer, H::NAME, self.0.share())
    }
}

impl<'de, H: Shareable> Deserialize<'de> for Handle<H> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize(deserializer, H::NAME, H::adopt).map(Handle::new)
    }
}

/// Stamps out [`Shareable`] for a WIT resource whose interface has `adopt`.
macro_rules! shareable {
    ($resource:ty, $adopt:path, $name:literal) => {
        impl Shareable for $resource {
            const NAME: &'static str = $name;

            fn share(&self) -> Result<types::Capability, types::Error> {
                <$resource>::share(self)
            }

            fn adopt(token: types::Capability) -> Result<Self, types::Error> {
                $adopt(token)
            }
        }
    };
}

shareable!(shared::Region, shared::adopt, "mpwasm::Region");
shareable!(sync::SyncObject, sync::adopt, "mpwasm::SyncObject");
shareable!(manager::Proxy, manager::adopt, "mpwasm::Proxy");
