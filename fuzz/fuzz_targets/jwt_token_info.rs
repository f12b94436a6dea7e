#![no_main]
//! See `auth_broker_fuzzing::jwt_token_info`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| auth_broker_fuzzing::jwt_token_info::run(data));
