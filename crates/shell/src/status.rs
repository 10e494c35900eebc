//! Error replies a client can read, whatever they quote: grpc-core clients (Python, C++, Ruby)
//! refuse metadata over 16 KiB by default and report RESOURCE_EXHAUSTED instead of the status
//! the server sent, so the message and the details are cut to fit well under 8 KiB together.

use tonic::Status;
use tonic_types::{ErrorDetails, FieldViolation, PreconditionViolation, StatusExt};

/// The longest `grpc-message`, percent-encoded as it travels.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// The longest encoded `google.rpc.Status` in `grpc-status-details-bin`, before base64 (which
/// makes it 4/3 as long).
pub const MAX_DETAILS_BYTES: usize = 4096;
/// The longest text of one detail (a field, a subject, a description) once trimmed.
const MAX_DETAIL_TEXT_CHARS: usize = 256;

/// Whether `status` fits the bounds as it is.
pub fn fits(status: &Status) -> bool {
    encoded_len(status.message()) <= MAX_MESSAGE_BYTES
        && status.details().len() <= MAX_DETAILS_BYTES
}

/// `status` cut to the bounds: the message to its beginning and length, every detail text to
/// [`MAX_DETAIL_TEXT_CHARS`], and violation lists to what fits, ending with one that says how
/// many more there were. A status that fits is returned as it is.
pub fn bounded(status: Status) -> Status {
    if fits(&status) {
        return status;
    }
    let code = status.code();
    let message = fit_message(status.message());
    if status.details().is_empty() {
        return Status::new(code, message);
    }
    let mut details = status.get_error_details();
    trim_texts(&mut details);
    let precondition: Vec<PreconditionViolation> = details
        .precondition_failure()
        .map(|p| p.violations.clone())
        .unwrap_or_default();
    let bad_request: Vec<FieldViolation> = details
        .bad_request()
        .map(|b| b.field_violations.clone())
        .unwrap_or_default();
    // Keep fewer violations until the reply fits; a quarter fewer each round.
    let (mut keep_pre, mut keep_bad) = (precondition.len(), bad_request.len());
    loop {
        let mut trial = details.clone();
        if !precondition.is_empty() {
            trial.set_precondition_failure(with_marker(&precondition, keep_pre, |more| {
                PreconditionViolation {
                    r#type: "TRUNCATED".into(),
                    subject: String::new(),
                    description: format!("{more} more violations not shown"),
                }
            }));
        }
        if !bad_request.is_empty() {
            trial.set_bad_request(with_marker(&bad_request, keep_bad, |more| FieldViolation {
                field: String::new(),
                description: format!("{more} more field violations not shown"),
                ..Default::default()
            }));
        }
        let candidate = Status::with_error_details(code, message.clone(), trial);
        if candidate.details().len() <= MAX_DETAILS_BYTES {
            return candidate;
        }
        if keep_pre == 0 && keep_bad == 0 {
            break;
        }
        keep_pre = keep_pre * 3 / 4;
        keep_bad = keep_bad * 3 / 4;
    }
    // Whatever else is too large goes; the error's reason stays when it fits alone.
    if let Some(info) = details.error_info() {
        let mut reason_only = ErrorDetails::new();
        reason_only.set_error_info(
            info.reason.clone(),
            info.domain.clone(),
            info.metadata.clone(),
        );
        let candidate = Status::with_error_details(code, message.clone(), reason_only);
        if candidate.details().len() <= MAX_DETAILS_BYTES {
            return candidate;
        }
    }
    Status::new(code, message)
}

fn with_marker<T: Clone>(all: &[T], keep: usize, marker: impl Fn(usize) -> T) -> Vec<T> {
    let mut kept = all[..keep].to_vec();
    if keep < all.len() {
        kept.push(marker(all.len() - keep));
    }
    kept
}

fn trim_texts(details: &mut ErrorDetails) {
    if let Some(pre) = details.precondition_failure() {
        let violations: Vec<PreconditionViolation> = pre
            .violations
            .iter()
            .map(|v| PreconditionViolation {
                r#type: cut(&v.r#type),
                subject: cut(&v.subject),
                description: cut(&v.description),
            })
            .collect();
        details.set_precondition_failure(violations);
    }
    if let Some(bad) = details.bad_request() {
        let violations: Vec<FieldViolation> = bad
            .field_violations
            .iter()
            .map(|v| FieldViolation {
                field: cut(&v.field),
                description: cut(&v.description),
                reason: cut(&v.reason),
                localized_message: None,
            })
            .collect();
        details.set_bad_request(violations);
    }
    if let Some(info) = details.error_info().cloned() {
        let metadata = info
            .metadata
            .iter()
            .map(|(k, v)| (cut(k), cut(v)))
            .collect::<std::collections::HashMap<_, _>>();
        details.set_error_info(cut(&info.reason), cut(&info.domain), metadata);
    }
    if let Some(resource) = details.resource_info().cloned() {
        details.set_resource_info(
            cut(&resource.resource_type),
            cut(&resource.resource_name),
            cut(&resource.owner),
            cut(&resource.description),
        );
    }
}

/// `text` cut to [`MAX_DETAIL_TEXT_CHARS`] characters, with its length when cut.
fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_DETAIL_TEXT_CHARS) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}… ({} characters)", &text[..at], text.chars().count()),
    }
}

/// `message` whole if it encodes within [`MAX_MESSAGE_BYTES`], else as much of its beginning as
/// fits with the note of its length.
fn fit_message(message: &str) -> String {
    if encoded_len(message) <= MAX_MESSAGE_BYTES {
        return message.to_owned();
    }
    let note = format!("… ({} characters in all)", message.chars().count());
    let budget = MAX_MESSAGE_BYTES - encoded_len(&note);
    let mut used = 0;
    let mut end = 0;
    for (at, c) in message.char_indices() {
        let mut buf = [0; 4];
        let size = encoded_len(c.encode_utf8(&mut buf));
        if used + size > budget {
            break;
        }
        used += size;
        end = at + c.len_utf8();
    }
    format!("{}{note}", &message[..end])
}

/// How long `text` is once percent-encoded as tonic writes `grpc-message`: controls, bytes above
/// ASCII and ` "#%<>`?{}` take three bytes each.
pub fn encoded_len(text: &str) -> usize {
    text.bytes()
        .map(|b| match b {
            0x00..=0x1f | 0x7f..=0xff => 3,
            b' ' | b'"' | b'#' | b'%' | b'<' | b'>' | b'`' | b'?' | b'{' | b'}' => 3,
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn header_bytes(status: &Status) -> usize {
        let mut headers = http::HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum()
    }

    #[test]
    fn a_status_that_fits_is_untouched() {
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "name: is required",
            ErrorDetails::with_bad_request_violation("name", "is required"),
        );
        let same = bounded(status.clone());
        assert_eq!(same.message(), status.message());
        assert_eq!(same.details(), status.details());
    }

    #[test]
    fn a_huge_message_and_huge_details_are_cut_under_8_kib() {
        let value = "é".repeat(5 * 1024 * 1024);
        let status = Status::with_error_details(
            Code::InvalidArgument,
            format!("name: {value} is not a name"),
            ErrorDetails::with_bad_request_violation(value.clone(), value.clone()),
        );
        assert!(header_bytes(&status) > 10_000_000);
        let cut = bounded(status);
        assert_eq!(cut.code(), Code::InvalidArgument);
        assert!(header_bytes(&cut) < 8 * 1024, "{}", header_bytes(&cut));
        assert!(cut.message().starts_with("name: é"), "{}", cut.message());
        assert!(cut.message().ends_with("characters in all)"));
        let details = cut.get_error_details();
        let violation = &details.bad_request().unwrap().field_violations[0];
        assert!(
            violation.field.ends_with("(5242880 characters)"),
            "{}",
            violation.field
        );
    }

    #[test]
    fn long_violation_lists_keep_what_fits_and_say_how_many_more() {
        let mut details = ErrorDetails::new();
        for i in 0..5000 {
            details.add_precondition_failure_violation(
                "FIELD_NO_DELETE",
                format!("demo.Hello.field_{i}"),
                "Previously present field was deleted.",
            );
        }
        details.set_error_info("INCOMPATIBLE_VERSION", "registry.flotilla.dev", []);
        let status = Status::with_error_details(Code::FailedPrecondition, "refused", details);
        let cut = bounded(status);
        assert!(header_bytes(&cut) < 8 * 1024);
        let details = cut.get_error_details();
        let violations = &details.precondition_failure().unwrap().violations;
        assert!(violations.len() > 10, "{}", violations.len());
        let last = violations.last().unwrap();
        assert_eq!(last.r#type, "TRUNCATED");
        let shown = violations.len() - 1;
        assert_eq!(
            last.description,
            format!("{} more violations not shown", 5000 - shown)
        );
        assert_eq!(details.error_info().unwrap().reason, "INCOMPATIBLE_VERSION");
    }

    #[test]
    fn encoded_lengths_count_escapes() {
        assert_eq!(encoded_len("abc"), 3);
        assert_eq!(encoded_len("a b"), 5);
        assert_eq!(encoded_len("é"), 6);
    }
}
