//! Feeds two arbitrary byte strings to `check_encoded` under every category: the first input
//! byte says where the rest splits into the previous and the current schema. Any input must
//! give `Ok` or `Err`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = if rest.is_empty() { 0 } else { usize::from(split) * rest.len() / 255 };
    let (previous, current) = rest.split_at(at.min(rest.len()));
    for category in flotilla_compat::Category::ALL {
        let _ = flotilla_compat::check_encoded(previous, current, category);
    }
});
