#![no_main]
//! See `auth_broker_fuzzing::jwks_document`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| auth_broker_fuzzing::jwks_document::run(data));
