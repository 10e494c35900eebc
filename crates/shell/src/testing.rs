//! What every server of the suite must do with whatever it is sent, as property-test parts
//! (feature `testing`): strategies for hostile field values, and the check of a reply.

use proptest::prelude::*;
use tonic::{Code, Status};

/// Field text a hostile or careless client sends: the values that mean something to the
/// suite, arbitrary Unicode with controls, and very long strings.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "", " ", "greeter", "frontend", "Greeter", "greeter-", "1.0.0", "1.1.0", "2.0.0",
            "1.0", "v1.0.0", "^1", "^1.1", ">=1, <3", "*", "^^1", "127.0.0.1:7000", "[::1]:80",
            "host", "0f8fad5b-d9cb-469f-a165-70867728950e", "not-a-uuid", "100", "-1",
        ])
        .prop_map(str::to_owned),
        3 => any::<String>(),
        2 => "\\PC{0,40}",
        1 => (any::<char>(), 1_000usize..120_000).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

/// Bytes where a serialized FileDescriptorSet belongs: `valid` sets, the same with bytes
/// flipped or cut, and arbitrary bytes.
pub fn descriptor_bytes(valid: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let pick = prop::sample::select(valid);
    prop_oneof![
        1 => Just(Vec::new()),
        2 => pick.clone(),
        3 => (pick.clone(), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6))
            .prop_map(|(mut bytes, flips)| {
                for (at, byte) in flips {
                    let at = at.index(bytes.len());
                    bytes[at] ^= byte.max(1);
                }
                bytes
            }),
        1 => (pick, any::<prop::sample::Index>()).prop_map(|(bytes, at)| {
            bytes[..at.index(bytes.len())].to_vec()
        }),
        2 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

/// The bytes a status takes in a reply's headers: `grpc-message` percent-encoded, and
/// `grpc-status-details-bin` in base64.
pub fn status_metadata_bytes(status: &Status) -> usize {
    crate::status::encoded_len(status.message()) + status.details().len().div_ceil(3) * 4
}

/// The promise every call of a decodable request keeps, whatever its fields: an answer, or a
/// status that says what was wrong — never UNKNOWN, CANCELLED (a reset stream) or INTERNAL —
/// whose metadata a grpc-core client reads (under 8 KiB).
pub fn check_reply<T>(rpc: &str, reply: &Result<T, Status>) -> Result<(), TestCaseError> {
    let Err(status) = reply else {
        return Ok(());
    };
    prop_assert!(
        !matches!(
            status.code(),
            Code::Unknown | Code::Cancelled | Code::Internal
        ),
        "{rpc} answered {:?}: {}",
        status.code(),
        crate::status::bounded(status.clone()).message()
    );
    let bytes = status_metadata_bytes(status);
    prop_assert!(
        bytes < 8 * 1024,
        "{rpc}: {bytes} bytes of status metadata ({:?})",
        status.code()
    );
    Ok(())
}
