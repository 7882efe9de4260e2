#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_token::fuzzing::pem_bytes(data));
