//! The whole path a published schema takes: decode → validate → canonicalise
//! (`Schema::from_bytes`, what PublishVersion, Resolve and WatchEndpoints run on every schema
//! they are sent), then compare, as the compatibility gate, CheckCompatibility and a caller
//! schema's resolve do. Any input must give `Ok` or `Err`, never a panic; and a schema that
//! validation accepts must be one every comparison reads (one rule for a valid schema).
#![no_main]

use flotilla_compat::{Category, check, check_encoded, policy::caller_compatibility};
use flotilla_model::Schema;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(schema) = Schema::from_bytes(data) else {
        return;
    };
    let set = schema.descriptor_set();
    for category in Category::ALL {
        assert!(check(&set, &set, category).is_ok(), "check refused what publish accepted");
        assert!(
            check_encoded(schema.bytes(), schema.bytes(), category).is_ok(),
            "check_encoded refused what publish accepted"
        );
    }
    assert!(caller_compatibility(&set, &set).is_ok());
    // Canonical bytes are a fixed point: what was stored validates and canonicalises the same.
    let again = Schema::from_bytes(schema.bytes()).expect("canonical bytes stay valid");
    assert_eq!(again.fingerprint(), schema.fingerprint());
});
