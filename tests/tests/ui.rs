//! Compile-time promises: trybuild UI tests.
//!
//! The `.stderr` files are pinned to the toolchain CI runs; after a toolchain
//! change, regenerate them with `TRYBUILD=overwrite cargo test -p t87s-tests --test ui`
//! and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/*/pass/*.rs");
    t.compile_fail("ui/*/fail/*.rs");
}
