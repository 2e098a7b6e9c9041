//! Entry decoding: arbitrary bytes under a key are a miss or a well-formed
//! entry, never a panic; values decode or are refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use t87s::{Codec, Postcard};

fuzz_target!(|data: &[u8]| {
    if let Some(entry) = t87s::__private::decode_redis_entry(data) {
        for tag in entry.tags.iter() {
            assert_eq!(t87s::engine::TagPath::from_encoded(tag.as_str()).as_ref(), Ok(tag));
        }
    }
    let _ = Postcard.decode::<(String, Vec<u64>, Option<bool>)>(data);
});
