//! `wire::decode` on arbitrary frame bodies (the bytes after the length
//! prefix): it must return, without panicking, overflowing the stack or
//! reserving more than its header limit, and a frame it accepts must
//! encode and decode back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ractor_otp::cluster::wire::__fuzz;

fuzz_target!(|body: &[u8]| {
    if let Ok((same, payload)) = __fuzz::frame(body) {
        assert!(same, "a decoded frame did not survive encode + decode");
        assert!(payload < body.len());
    }
});
