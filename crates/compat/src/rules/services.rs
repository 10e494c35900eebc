//! Service and RPC rules.

use prost_reflect::MethodDescriptor;

use super::pairs::{Diff, Finding, methods_by_name};
use super::schema::all_services;

/// SERVICE_NO_DELETE: services of a file, by name.
pub(crate) fn no_delete(diff: &Diff<'_>) -> Vec<Finding> {
    super::files::deleted_from_file(diff, "service", |file| {
        all_services(file)
            .iter()
            .map(|s| s.full_name().to_owned())
            .collect()
    })
}

/// RPC_NO_DELETE: RPCs of a paired service, by name.
pub(crate) fn rpc_no_delete(diff: &Diff<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (previous, current) in diff.services() {
        let kept = methods_by_name(&current);
        for (name, method) in methods_by_name(&previous) {
            if !kept.contains_key(&name) {
                out.push(Finding::new(
                    current.parent_file().name(),
                    method.full_name(),
                    None,
                    format!(
                        "Previously present RPC {name:?} on service {:?} was deleted.",
                        current.name()
                    ),
                ));
            }
        }
    }
    out
}

/// Reports each paired RPC for which `changed` says what changed.
fn rpc_changes(
    diff: &Diff<'_>,
    changed: fn(&MethodDescriptor, &MethodDescriptor) -> Option<String>,
) -> Vec<Finding> {
    diff.methods()
        .into_iter()
        .filter_map(|(previous, current)| {
            let what = changed(&previous, &current)?;
            Some(Finding::new(
                current.parent_file().name(),
                current.full_name(),
                None,
                format!(
                    "RPC {:?} on service {:?} {what}.",
                    current.name(),
                    current.parent_service().name()
                ),
            ))
        })
        .collect()
}

/// RPC_SAME_REQUEST_TYPE.
pub(crate) fn same_request_type(diff: &Diff<'_>) -> Vec<Finding> {
    rpc_changes(diff, |previous, current| {
        let (before, after) = (previous.input(), current.input());
        (before.full_name() != after.full_name()).then(|| {
            format!(
                "changed request type from {:?} to {:?}",
                before.full_name(),
                after.full_name()
            )
        })
    })
}

/// RPC_SAME_RESPONSE_TYPE.
pub(crate) fn same_response_type(diff: &Diff<'_>) -> Vec<Finding> {
    rpc_changes(diff, |previous, current| {
        let (before, after) = (previous.output(), current.output());
        (before.full_name() != after.full_name()).then(|| {
            format!(
                "changed response type from {:?} to {:?}",
                before.full_name(),
                after.full_name()
            )
        })
    })
}

fn streaming(on: bool) -> &'static str {
    if on { "streaming" } else { "unary" }
}

/// RPC_SAME_CLIENT_STREAMING.
pub(crate) fn same_client_streaming(diff: &Diff<'_>) -> Vec<Finding> {
    rpc_changes(diff, |previous, current| {
        let (before, after) = (
            previous.is_client_streaming(),
            current.is_client_streaming(),
        );
        (before != after).then(|| {
            format!(
                "changed from client {} to client {}",
                streaming(before),
                streaming(after)
            )
        })
    })
}

/// RPC_SAME_SERVER_STREAMING.
pub(crate) fn same_server_streaming(diff: &Diff<'_>) -> Vec<Finding> {
    rpc_changes(diff, |previous, current| {
        let (before, after) = (
            previous.is_server_streaming(),
            current.is_server_streaming(),
        );
        (before != after).then(|| {
            format!(
                "changed from server {} to server {}",
                streaming(before),
                streaming(after)
            )
        })
    })
}

fn idempotency_level(method: &MethodDescriptor) -> &'static str {
    let options = method
        .method_descriptor_proto()
        .options
        .clone()
        .unwrap_or_default();
    options.idempotency_level().as_str_name()
}

/// RPC_SAME_IDEMPOTENCY_LEVEL.
pub(crate) fn same_idempotency_level(diff: &Diff<'_>) -> Vec<Finding> {
    rpc_changes(diff, |previous, current| {
        let (before, after) = (idempotency_level(previous), idempotency_level(current));
        (before != after)
            .then(|| format!("changed option \"idempotency_level\" from {before:?} to {after:?}"))
    })
}

#[cfg(test)]
mod tests {
    use crate::Category;
    use crate::rules::testing::{check, messages_of};

    const OLD: &str = "syntax = \"proto3\"; package p; message A {} message B {}
        service S { rpc One(A) returns (B); rpc Two(A) returns (B); } service T {}";

    #[test]
    fn deleted_services_and_rpcs_are_reported() {
        let new = "syntax = \"proto3\"; package p; message A {} message B {} service S { rpc One(A) returns (B); }";
        let report = check(&[("a.proto", OLD)], &[("a.proto", new)], Category::File);
        assert_eq!(
            messages_of(&report, "SERVICE_NO_DELETE"),
            ["Previously present service \"T\" was deleted from file."]
        );
        assert_eq!(
            messages_of(&report, "RPC_NO_DELETE"),
            ["Previously present RPC \"Two\" on service \"S\" was deleted."]
        );
        assert!(
            check(&[("a.proto", OLD)], &[("a.proto", new)], Category::Wire)
                .violations
                .is_empty()
        );
    }

    #[test]
    fn rpc_signature_changes_break_the_wire() {
        let new = "syntax = \"proto3\"; package p; message A {} message B {}
            service S { rpc One(B) returns (stream A); rpc Two(stream A) returns (B) { option idempotency_level = IDEMPOTENT; } } service T {}";
        let report = check(&[("a.proto", OLD)], &[("a.proto", new)], Category::Wire);
        assert_eq!(
            messages_of(&report, "RPC_SAME_REQUEST_TYPE"),
            ["RPC \"One\" on service \"S\" changed request type from \"p.A\" to \"p.B\"."]
        );
        assert_eq!(
            messages_of(&report, "RPC_SAME_RESPONSE_TYPE"),
            ["RPC \"One\" on service \"S\" changed response type from \"p.B\" to \"p.A\"."]
        );
        assert_eq!(
            messages_of(&report, "RPC_SAME_SERVER_STREAMING"),
            ["RPC \"One\" on service \"S\" changed from server unary to server streaming."]
        );
        assert_eq!(
            messages_of(&report, "RPC_SAME_CLIENT_STREAMING"),
            ["RPC \"Two\" on service \"S\" changed from client unary to client streaming."]
        );
        assert_eq!(
            messages_of(&report, "RPC_SAME_IDEMPOTENCY_LEVEL"),
            [
                "RPC \"Two\" on service \"S\" changed option \"idempotency_level\" from \"IDEMPOTENCY_UNKNOWN\" to \"IDEMPOTENT\"."
            ]
        );
    }
}
