//! Values decoded from bytes, remembered per thread: bytes exactly equal to
//! the ones this thread decoded a moment ago (for the same owner, as the
//! same type) give a clone of that value instead of being decoded again.
//!
//! A shared store sends an entry's bytes on every hit, and a hot key's bytes
//! do not change between its writes; decoding them (the entry's envelope
//! and tags in the Redis adapter, the value by the engine's codec: postcard,
//! field by field, a `Vec<u8>` element by element) is most of what a Redis
//! hit costs the client beyond the round trip. The bytes are still read
//! from the store on every hit and compared whole, so this never gives a
//! value the store does not hold: it only skips decoding bytes already
//! decoded.
//!
//! Bounded per thread: [`SLOTS`] slots (a Redis hit uses two: its entry and
//! its value), each holding one value whose bytes are at most
//! [`MAX_BYTES`] long. A value is kept when its slot is free, or when its
//! bytes are read twice in a row there, so bytes read once do not push out
//! hot ones. A clone is what the memory store serves too: a value type
//! whose clones share state (an `Arc` inside) shares it between hits.

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Slots per thread.
const SLOTS: usize = 128;
/// The longest bytes a slot keeps the value of.
const MAX_BYTES: usize = 4096;

/// One value kept: what it was decoded from, for which owner, as which type.
struct Kept {
    owner: u64,
    type_id: TypeId,
    bytes: Arc<[u8]>,
    value: Box<dyn Any>,
}

#[derive(Default)]
struct Slot {
    /// The digest of the bytes last read in this slot (kept or not).
    last: Cell<u64>,
    kept: Option<Kept>,
}

thread_local! {
    static DECODED: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// A number no other owner (an engine, whose codec decodes values; an
/// adapter, which decodes its entries) in this process has.
pub(crate) fn owner_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// How long a head and a tail of the bytes pick their slot: the slot and
/// the "read again" test need only a good spread (the bytes are compared
/// whole before anything kept is used), so long bytes are not hashed whole.
const SAMPLE: usize = 64;

/// Picks the slot of `bytes` for `owner`: a hash of their length, their
/// first and their last [`SAMPLE`] bytes (of all of them, when short).
#[inline]
fn digest(bytes: &[u8], owner: u64) -> u64 {
    use xxhash_rust::xxh3::xxh3_64_with_seed;
    match (bytes.get(..SAMPLE), bytes.len().checked_sub(SAMPLE)) {
        (Some(head), Some(from)) if bytes.len() > 2 * SAMPLE => {
            let tail = bytes.get(from..).unwrap_or_default();
            let seed = owner ^ (bytes.len() as u64).rotate_left(32);
            xxh3_64_with_seed(head, xxh3_64_with_seed(tail, seed))
        }
        _ => xxh3_64_with_seed(bytes, owner),
    }
}

/// `bytes` as a `T`: a clone of the value this thread decoded from the same
/// bytes for `owner`, or `decode(bytes)` (remembered, with the bytes
/// `kept_bytes` gives, when its slot is free or these bytes were the last
/// read in it).
#[inline]
pub(crate) fn value<T: Clone + 'static, E>(
    owner: u64,
    bytes: &[u8],
    kept_bytes: impl FnOnce() -> Arc<[u8]>,
    decode: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Result<T, E> {
    if bytes.len() > MAX_BYTES {
        return decode(bytes);
    }
    let digest = digest(bytes, owner);
    let at = (digest as usize) % SLOTS;
    // The kept value, or whether these bytes were the last read in the slot.
    let found = DECODED
        .try_with(|slots| {
            // Re-entered (a `Clone` or `Deserialize` that reads the cache):
            // decode as if nothing were kept.
            let slots = slots.try_borrow().ok()?;
            let slot = slots.get(at)?;
            let again = slot.last.replace(digest) == digest;
            let Some(kept) = &slot.kept else {
                return Some(Err(true));
            };
            let same = kept.owner == owner
                && kept.type_id == TypeId::of::<T>()
                && (std::ptr::eq(&kept.bytes[..], bytes) || kept.bytes[..] == *bytes);
            match same.then(|| kept.value.downcast_ref::<T>()).flatten() {
                Some(value) => Some(Ok(value.clone())),
                None => Some(Err(again)),
            }
        })
        .ok()
        .flatten();
    let keep = match found {
        Some(Ok(value)) => return Ok(value),
        Some(Err(keep)) => keep,
        // No slots yet on this thread.
        None => true,
    };
    let value = decode(bytes)?;
    if keep {
        let _ = DECODED.try_with(|slots| {
            let Ok(mut slots) = slots.try_borrow_mut() else {
                return;
            };
            if slots.is_empty() {
                slots.resize_with(SLOTS, Slot::default);
            }
            let Some(slot) = slots.get_mut(at) else {
                return;
            };
            slot.last.set(digest);
            let kept = Kept {
                owner,
                type_id: TypeId::of::<T>(),
                bytes: kept_bytes(),
                value: Box::new(value.clone()),
            };
            // The value pushed out is dropped after the borrow ends: its
            // `Drop` may read the cache.
            let old = slot.kept.replace(kept);
            drop(slots);
            drop(old);
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::codec::CodecError;

    /// A store's answer: new bytes each time.
    fn bytes(b: &[u8]) -> Vec<u8> {
        b.to_vec()
    }

    fn read<T: Clone + 'static>(
        owner: u64,
        bytes: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<T, CodecError>,
    ) -> Result<T, CodecError> {
        value(owner, bytes, || Arc::from(bytes), decode)
    }

    /// A decoder that counts its calls.
    fn counting(calls: &Cell<u32>) -> impl Fn(&[u8]) -> Result<Vec<u8>, CodecError> + '_ {
        move |b| {
            calls.set(calls.get() + 1);
            Ok(b.to_vec())
        }
    }

    #[test]
    fn the_same_bytes_are_decoded_once_then_cloned() {
        let engine = owner_id();
        let calls = Cell::new(0);
        for _ in 0..5 {
            // A new allocation each time, as a store's answer is.
            let got = read(engine, &bytes(b"hello"), counting(&calls));
            assert_eq!(got, Ok(b"hello".to_vec()));
        }
        assert_eq!(calls.get(), 1, "kept on the first decode of an empty slot");
    }

    #[test]
    fn other_bytes_another_engine_or_another_type_are_decoded() {
        let (engine, other) = (owner_id(), owner_id());
        let calls = Cell::new(0);
        read(engine, &bytes(b"one"), counting(&calls)).unwrap();
        read(engine, &bytes(b"one"), counting(&calls)).unwrap();
        assert_eq!(calls.get(), 1);
        read(other, &bytes(b"one"), counting(&calls)).unwrap();
        assert_eq!(calls.get(), 2, "another owner may decode otherwise");
        let as_string = read(engine, &bytes(b"one"), |b| {
            Ok(String::from_utf8_lossy(b).into_owned())
        });
        assert_eq!(as_string, Ok("one".to_owned()));
        let changed = read(engine, &bytes(b"onf"), counting(&calls));
        assert_eq!(changed, Ok(b"onf".to_vec()));
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn a_value_read_once_does_not_push_out_a_kept_one() {
        let engine = owner_id();
        let calls = Cell::new(0);
        // Two byte strings that land in one slot.
        let slot = |b: &[u8]| digest(b, engine) as usize % SLOTS;
        let hot = b"hot".to_vec();
        let cold = (0u32..)
            .map(|i| i.to_le_bytes().to_vec())
            .find(|b| slot(b) == slot(&hot))
            .unwrap();
        read(engine, &bytes(&hot), counting(&calls)).unwrap();
        read(engine, &bytes(&cold), counting(&calls)).unwrap();
        read(engine, &bytes(&hot), counting(&calls)).unwrap();
        assert_eq!(calls.get(), 2, "the hot value stayed after one cold read");
        // Decoded twice in a row in its slot, the new value is kept.
        read(engine, &bytes(&cold), counting(&calls)).unwrap();
        read(engine, &bytes(&cold), counting(&calls)).unwrap();
        read(engine, &bytes(&cold), counting(&calls)).unwrap();
        assert_eq!(calls.get(), 4);
    }

    #[test]
    fn long_bytes_and_failed_decodes_are_not_kept() {
        let engine = owner_id();
        let calls = Cell::new(0);
        let long = bytes(&[7u8; MAX_BYTES + 1]);
        for _ in 0..3 {
            read(engine, &long, counting(&calls)).unwrap();
        }
        assert_eq!(calls.get(), 3);
        let failing =
            |_: &[u8]| -> Result<Vec<u8>, CodecError> { Err(CodecError::Decode("no".into())) };
        assert!(read(engine, &bytes(b"bad"), failing).is_err());
        assert!(read(engine, &bytes(b"bad"), failing).is_err());
    }

    #[test]
    fn long_bytes_that_differ_only_in_the_middle_are_told_apart() {
        let engine = owner_id();
        let calls = Cell::new(0);
        let mut long = vec![1u8; 1000];
        for _ in 0..2 {
            read(engine, &bytes(&long), counting(&calls)).unwrap();
        }
        assert_eq!(calls.get(), 1);
        long[500] = 2;
        // Same length, head and tail: the same slot, and decoded all the same.
        assert_eq!(digest(&long, engine), digest(&[1u8; 1000], engine));
        let got = read(engine, &bytes(&long), counting(&calls)).unwrap();
        assert_eq!((got[500], calls.get()), (2, 2));
    }
}
