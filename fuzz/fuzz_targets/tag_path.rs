//! Tag path encoding: any text parses to a path that re-encodes to itself, or
//! is refused; any segment list round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use t87s::engine::TagPath;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = TagPath::from_encoded(text) {
        let segments: Vec<String> = path.segments().map(|s| s.into_owned()).collect();
        let again = TagPath::new(&segments).expect("a parsed path has segments");
        assert_eq!(again.as_str(), text);
    }
    let segments: Vec<&str> = text.split('\u{1f}').collect();
    let path = TagPath::new(&segments).expect("at least one segment");
    assert_eq!(path.segments().collect::<Vec<_>>(), segments);
    assert_eq!(TagPath::from_encoded(path.as_str()).expect("our own encoding"), path);
});
