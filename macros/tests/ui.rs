//! Misuse of the derives fails to compile with a clear error: every case in
//! `tests/ui/` is compiled in one trybuild run (one cargo invocation for
//! all of them, after one check of the dependencies) and its errors are
//! compared with the `.stderr` file next to it.
//!
//! Regenerate the `.stderr` files after changing a message with
//! `TRYBUILD=overwrite cargo test -p ractor-otp-macros --test ui`, then
//! review them.

#[test]
fn misuse_is_a_clear_compile_error() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
