//! FIELD_SAME_DEFAULT, after buf's field_default.go: defaults are compared by value, leniently
//! across kinds (FIELD_SAME_TYPE reports kind changes), and printed as Go prints them.

use prost_reflect::{Kind, Value};

use super::field::Field;
use super::fields::field_changes;
use super::pairs::{Diff, Finding};

/// A default as compared: text (string and bytes compare with each other), or a number
/// (bools, integers, enums and floats compare with each other by exact value).
#[derive(Debug, Clone, PartialEq)]
enum Comparable {
    Text(Vec<u8>),
    Int(i128),
    Float32(f32),
    Float64(f64),
}

impl Comparable {
    /// Whether this is the zero of its type; `-0.0` is not, as in Go's `reflect.Value.IsZero`.
    fn is_zero(&self) -> bool {
        match self {
            Self::Text(t) => t.is_empty(),
            Self::Int(i) => *i == 0,
            Self::Float32(f) => f.to_bits() == 0,
            Self::Float64(f) => f.to_bits() == 0,
        }
    }

    fn is_nan(&self) -> bool {
        match self {
            Self::Float32(f) => f.is_nan(),
            Self::Float64(f) => f.is_nan(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
struct Default {
    value: Comparable,
    printed: String,
}

/// Repeated, map, message and group fields have no default.
fn can_have_default(field: &Field) -> bool {
    !field.is_list() && !field.is_map() && !matches!(field.kind(), Kind::Message(_))
}

fn default_of(field: &Field) -> Option<Default> {
    let (value, printed) = match field.default_value() {
        Value::Bool(b) => (Comparable::Int(i128::from(b)), b.to_string()),
        Value::I32(i) => (Comparable::Int(i128::from(i)), i.to_string()),
        Value::I64(i) => (Comparable::Int(i128::from(i)), i.to_string()),
        Value::U32(i) => (Comparable::Int(i128::from(i)), i.to_string()),
        Value::U64(i) => (Comparable::Int(i128::from(i)), i.to_string()),
        Value::F32(f) => (
            Comparable::Float32(f),
            go_float(f64::from(f), &format!("{f:e}"), &f.to_string()),
        ),
        Value::F64(f) => (
            Comparable::Float64(f),
            go_float(f, &format!("{f:e}"), &f.to_string()),
        ),
        Value::String(s) => (Comparable::Text(s.clone().into_bytes()), format!("{s:?}")),
        Value::Bytes(b) => {
            let printed: Vec<_> = b.iter().map(|byte| format!("0x{byte:X}")).collect();
            (
                Comparable::Text(b.to_vec()),
                format!("[{}]", printed.join(",")),
            )
        }
        Value::EnumNumber(n) => (Comparable::Int(i128::from(n)), enum_printed(field, n)),
        _ => return None,
    };
    Some(Default { value, printed })
}

/// `Enum.VALUE`, or `Enum.7(?)` for a number the enum lacks.
fn enum_printed(field: &Field, number: i32) -> String {
    let Kind::Enum(e) = field.kind() else {
        return number.to_string();
    };
    match e.get_value(number) {
        Some(v) => format!("{}.{}", e.name(), v.name()),
        None => format!("{}.{number}(?)", e.name()),
    }
}

/// Go's `%v` for a float: shortest digits, exponent form below 1e-4 and from 1e6 on.
/// `scientific` is Rust's shortest `{:e}` form of the same value and `plain` its `Display`.
fn go_float(f: f64, scientific: &str, plain: &str) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return plain.to_owned();
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if f == 0.0 || (-4..6).contains(&exponent) {
        return plain.to_owned();
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

/// Whether two defaults are the same value, after buf's `defaultsEqual`.
fn same_default(before: &Comparable, after: &Comparable) -> bool {
    use Comparable::*;
    match (before, after) {
        (Text(a), Text(b)) => a == b,
        (Text(_), _) | (_, Text(_)) => false,
        // float and double compare at float precision, so a widened field keeps its default.
        (Float32(a), Float64(b)) | (Float64(b), Float32(a)) => {
            (a.is_nan() && b.is_nan()) || *a == *b as f32
        }
        _ if before.is_nan() || after.is_nan() => before.is_nan() && after.is_nan(),
        _ => exact_eq(before, after),
    }
}

/// Exact numeric equality across integers and floats (buf compares as `big.Float`).
fn exact_eq(a: &Comparable, b: &Comparable) -> bool {
    use Comparable::*;
    let as_float = |c: &Comparable| match c {
        Float32(f) => Some(f64::from(*f)),
        Float64(f) => Some(*f),
        _ => None,
    };
    match (a, b) {
        (Int(x), Int(y)) => x == y,
        (Int(i), other) | (other, Int(i)) => {
            as_float(other).is_some_and(|f| int_equals_float(*i, f))
        }
        _ => as_float(a) == as_float(b),
    }
}

fn int_equals_float(i: i128, f: f64) -> bool {
    // Every i128 a default can hold is below 2^65, well inside f64's exact integer range once
    // the float is integral and that small.
    f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30 && f as i128 == i
}

/// FIELD_SAME_DEFAULT: only when at least one side has a non-zero default.
pub(crate) fn same_default_rule(diff: &Diff<'_>) -> Vec<Finding> {
    field_changes(diff, |previous, current| {
        if !can_have_default(previous) || !can_have_default(current) {
            return None;
        }
        let (before, after) = (default_of(previous)?, default_of(current)?);
        if before.value.is_zero() && after.value.is_zero() {
            return None;
        }
        (!same_default(&before.value, &after.value)).then(|| {
            format!(
                "{} changed default value from {} to {}.",
                current.describe(),
                before.printed,
                after.printed
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Category;
    use crate::rules::testing::{check, messages_of};

    fn defaults(before: &str, after: &str) -> Vec<String> {
        let file = |t: &str| {
            [(
                "a.proto",
                format!("syntax = \"proto2\"; enum E {{ A = 1; B = 2; }} message M {{ {t}; }}"),
            )]
        };
        messages_of(
            &check(&file(before), &file(after), Category::Wire),
            "FIELD_SAME_DEFAULT",
        )
    }

    #[test]
    fn changed_defaults_are_printed_like_go() {
        assert_eq!(
            defaults(
                "optional int32 a = 1 [default = 5]",
                "optional int32 a = 1 [default = 6]"
            ),
            ["Field \"1\" with name \"a\" on message \"M\" changed default value from 5 to 6."]
        );
        assert_eq!(
            defaults(
                "optional double a = 1 [default = 1e6]",
                "optional double a = 1 [default = 0.5]"
            ),
            [
                "Field \"1\" with name \"a\" on message \"M\" changed default value from 1e+06 to 0.5."
            ]
        );
        assert_eq!(
            defaults(
                "optional string a = 1 [default = \"x\"]",
                "optional bytes a = 1 [default = \"AB\"]"
            ),
            [
                "Field \"1\" with name \"a\" on message \"M\" changed default value from \"x\" to [0x41,0x42]."
            ]
        );
        assert_eq!(
            defaults("optional E a = 1", "optional E a = 1 [default = B]"),
            ["Field \"1\" with name \"a\" on message \"M\" changed default value from E.A to E.B."]
        );
    }

    #[test]
    fn equal_values_across_kinds_are_the_same_default() {
        assert!(
            defaults(
                "optional int32 a = 1 [default = 1]",
                "optional int64 a = 1 [default = 1]"
            )
            .is_empty()
        );
        assert!(
            defaults(
                "optional float a = 1 [default = 0.1]",
                "optional double a = 1 [default = 0.1]"
            )
            .is_empty()
        );
        assert!(
            defaults(
                "optional bool a = 1 [default = true]",
                "optional uint32 a = 1 [default = 1]"
            )
            .is_empty()
        );
        assert!(
            defaults(
                "optional string a = 1 [default = \"AB\"]",
                "optional bytes a = 1 [default = \"AB\"]"
            )
            .is_empty()
        );
        assert!(defaults("optional int32 a = 1", "optional int32 a = 1 [default = 0]").is_empty());
        assert_eq!(
            defaults(
                "optional double a = 1 [default = nan]",
                "optional double a = 1 [default = inf]"
            )
            .len(),
            1
        );
        assert!(
            defaults(
                "optional double a = 1 [default = nan]",
                "optional float a = 1 [default = nan]"
            )
            .is_empty()
        );
    }

    #[test]
    fn go_float_formatting() {
        let go = |f: f64| go_float(f, &format!("{f:e}"), &f.to_string());
        assert_eq!(go(100000.0), "100000");
        assert_eq!(go(1e6), "1e+06");
        assert_eq!(go(1.5e-5), "1.5e-05");
        assert_eq!(go(0.0001), "0.0001");
        assert_eq!(go(-2.5), "-2.5");
        assert_eq!(go(f64::INFINITY), "+Inf");
        assert_eq!(go(1.0e21), "1e+21");
    }
}
