//! Derive macros for `ractor-otp`, re-exported by the main crate behind its
//! default `macros` feature.
//!
//! The first derive, `RemoteMessage`, arrives with the cluster layer; until
//! then this crate exports nothing, so depending on it costs one tiny
//! proc-macro build.
