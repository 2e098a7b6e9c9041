//! The value encoding used by adapters that store bytes.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A value could not be encoded or decoded.
///
/// ```
/// use t87s::{Codec, Postcard};
/// let err = Postcard.decode::<String>(&[0xff, 0xff]).unwrap_err();
/// assert!(err.to_string().starts_with("could not decode a cached value"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Serialization failed (for example a map with non-string keys in a
    /// format that needs string keys).
    #[error("could not encode a value for the cache: {0}")]
    Encode(String),
    /// The bytes are not a value of the requested type: corrupt, truncated,
    /// written by another version of the type, or not ours. The engine treats
    /// this as a miss.
    #[error("could not decode a cached value ({0}); it is treated as a miss")]
    Decode(String),
}

/// Turns values into bytes and back, for adapters that store bytes.
///
/// The default is [`Postcard`]. Implement this to use another serde format;
/// the format must be stable across the processes that share a store.
///
/// ```
/// use t87s::{Codec, Postcard};
/// let bytes = Postcard.encode(&vec![1u32, 2, 3])?;
/// assert_eq!(Postcard.decode::<Vec<u32>>(&bytes)?, vec![1, 2, 3]);
/// # Ok::<(), t87s::CodecError>(())
/// ```
pub trait Codec: Send + Sync + fmt::Debug + 'static {
    /// Encodes `value`.
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError>;
    /// Decodes a `T` from `bytes`; trailing bytes are an error.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError>;
}

/// The default codec: [postcard](https://docs.rs/postcard), a compact serde
/// format with a stable, documented wire format.
///
/// ```
/// use t87s::{Codec, Postcard};
/// assert_eq!(Postcard.encode(&7u8)?, vec![7]);
/// # Ok::<(), t87s::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

impl Codec for Postcard {
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        postcard::to_stdvec(value).map_err(|e| CodecError::Encode(e.to_string()))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        match postcard::take_from_bytes(bytes) {
            Ok((value, [])) => Ok(value),
            Ok((_, rest)) => Err(CodecError::Decode(format!(
                "{} trailing bytes after the value",
                rest.len()
            ))),
            Err(e) => Err(CodecError::Decode(e.to_string())),
        }
    }
}
