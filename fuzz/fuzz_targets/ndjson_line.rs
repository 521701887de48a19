//! The NDJSON loader on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fhir_bulk_fuzz::ndjson_line(data));
