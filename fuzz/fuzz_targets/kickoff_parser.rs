//! The kick-off parser on arbitrary query strings.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fhir_bulk_fuzz::kickoff_parser(data));
