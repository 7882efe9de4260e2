#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_token::fuzzing::jwks_bytes(data));
