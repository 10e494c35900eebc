//! Two schemas through the path of a publish after an earlier one: each decoded, validated and
//! canonicalised by `Schema::from_bytes`, then compared both ways under every category, as the
//! compatibility gate does with the stored predecessor. The first input byte says where the
//! rest splits. Two schemas that validate must always be comparable: `Ok`, never `Err` or a
//! panic.
#![no_main]

use flotilla_compat::{Category, check, policy::caller_compatibility};
use flotilla_model::Schema;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = if rest.is_empty() { 0 } else { usize::from(split) * rest.len() / 255 };
    let (previous, current) = rest.split_at(at.min(rest.len()));
    let (Ok(previous), Ok(current)) = (Schema::from_bytes(previous), Schema::from_bytes(current))
    else {
        return;
    };
    let (previous, current) = (previous.descriptor_set(), current.descriptor_set());
    for category in Category::ALL {
        assert!(check(&previous, &current, category).is_ok());
        assert!(check(&current, &previous, category).is_ok());
    }
    assert!(caller_compatibility(&previous, &current).is_ok());
});
