//! Printing a comparison's result: a report for people, or one JSON object for scripts.

use std::io::{self, Write};

use flotilla_compat::{Category, Location, Report};
use serde::Serialize;

/// What was compared, and what the comparison found.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    /// The NEW and OLD inputs as the user named them.
    pub new: &'a str,
    pub old: &'a str,
    pub category: Category,
    pub report: &'a Report,
}

impl Outcome<'_> {
    pub fn is_compatible(&self) -> bool {
        self.report.violations.is_empty()
    }
}

/// Whether the text report may use ANSI colours: only on a terminal, and not under `NO_COLOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub colour: bool,
}

impl Style {
    pub(crate) const RED: &str = "31";
    pub(crate) const GREEN: &str = "32";
    pub(crate) const YELLOW: &str = "33";
    pub(crate) const CYAN: &str = "36";
    pub(crate) const BOLD: &str = "1";
    pub(crate) const DIM: &str = "2";

    pub(crate) fn paint(self, text: &str, code: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// Past this width the location column stops aligning, so that one long name does not push every
/// message off the screen.
const LOCATION_COLUMN_MAX: usize = 60;

/// The report for people: a verdict line, then one line per violation (rule, location, message,
/// in aligned columns) or, when compatible, one per addition.
pub fn write_text(outcome: &Outcome, style: Style, out: &mut impl Write) -> io::Result<()> {
    let Outcome {
        new,
        old,
        category,
        report,
    } = *outcome;
    if outcome.is_compatible() {
        let additions = match report.additions.len() {
            0 => "no additions".to_owned(),
            n => count(n, "addition", "additions"),
        };
        writeln!(
            out,
            "{} ({category}): no breaking changes in {new} against {old}; {additions}",
            style.paint("✓ compatible", Style::GREEN),
        )?;
        for addition in &report.additions {
            writeln!(out, "  + {addition}")?;
        }
        return Ok(());
    }

    let heading = format!(
        "✗ {}",
        count(
            report.violations.len(),
            "breaking change",
            "breaking changes"
        )
    );
    writeln!(
        out,
        "{} ({category}) in {new} against {old}:",
        style.paint(&heading, Style::RED)
    )?;
    let locations: Vec<String> = report
        .violations
        .iter()
        .map(|v| v.location.to_string())
        .collect();
    let rule_width = report
        .violations
        .iter()
        .map(|v| v.rule.len())
        .max()
        .unwrap_or(0);
    let location_width = locations
        .iter()
        .map(|l| l.chars().count())
        .filter(|&w| w <= LOCATION_COLUMN_MAX)
        .max()
        .unwrap_or(0);
    for (violation, location) in report.violations.iter().zip(&locations) {
        writeln!(
            out,
            "  {}  {}  {}",
            style.paint(&format!("{:<rule_width$}", violation.rule), Style::BOLD),
            style.paint(&format!("{location:<location_width$}"), Style::DIM),
            violation.message
        )?;
    }
    Ok(())
}

/// The JSON object: `compatible`, `category`, `violations` (each with its `rule`, the `category`
/// checked, every category the rule belongs to, `location` and `message`) and `additions`.
pub fn write_json(outcome: &Outcome, out: &mut impl Write) -> io::Result<()> {
    let json = JsonReport {
        compatible: outcome.is_compatible(),
        category: outcome.category,
        violations: outcome
            .report
            .violations
            .iter()
            .map(|v| JsonViolation {
                rule: v.rule,
                category: outcome.category,
                categories: v.categories,
                location: &v.location,
                message: &v.message,
            })
            .collect(),
        additions: &outcome.report.additions,
    };
    serde_json::to_writer_pretty(&mut *out, &json)?;
    writeln!(out)
}

#[derive(Serialize)]
struct JsonReport<'a> {
    compatible: bool,
    category: Category,
    violations: Vec<JsonViolation<'a>>,
    additions: &'a [String],
}

#[derive(Serialize)]
struct JsonViolation<'a> {
    rule: &'a str,
    /// The category that was checked, which reported this violation.
    category: Category,
    /// Every category the rule belongs to.
    categories: &'a [Category],
    location: &'a Location,
    message: &'a str,
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use flotilla_compat::Violation;

    use super::*;

    const WIRE_JSON_AND_UP: &[Category] = &[Category::File, Category::Package, Category::WireJson];

    fn violation(rule: &'static str, element: &str, number: Option<i32>) -> Violation {
        Violation {
            rule,
            categories: WIRE_JSON_AND_UP,
            location: Location {
                file: "greet/v1/greeter.proto".into(),
                element: element.into(),
                number,
            },
            message: format!("{rule} happened to {element}"),
        }
    }

    fn breaking() -> Report {
        Report {
            violations: vec![
                violation(
                    "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
                    "greet.v1.HelloRequest",
                    Some(2),
                ),
                violation("FIELD_SAME_TYPE", "greet.v1.HelloReply.message", Some(1)),
            ],
            additions: vec!["greet.v1.HelloRequest.locale".into()],
        }
    }

    fn outcome(report: &Report) -> Outcome<'_> {
        Outcome {
            new: "v2",
            old: "v1",
            category: Category::WireJson,
            report,
        }
    }

    fn text(report: &Report, style: Style) -> String {
        let mut out = Vec::new();
        write_text(&outcome(report), style, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn breaking_changes_are_listed_in_aligned_columns() {
        let text = text(&breaking(), Style { colour: false });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "✗ 2 breaking changes (WIRE_JSON) in v2 against v1:"
        );
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with(
            "  FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED  greet/v1/greeter.proto:greet.v1.HelloRequest (#2)  "
        ), "{}", lines[1]);
        assert!(lines[2].starts_with("  FIELD_SAME_TYPE  "), "{}", lines[2]);
        // The messages start in the same column.
        let column = |line: &str, needle: &str| line.find(needle).unwrap();
        assert_eq!(
            column(lines[1], "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED happened"),
            column(lines[2], "FIELD_SAME_TYPE happened")
        );
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn one_breaking_change_is_singular() {
        let mut report = breaking();
        report.violations.truncate(1);
        assert!(
            text(&report, Style { colour: false }).starts_with("✗ 1 breaking change (WIRE_JSON)")
        );
    }

    #[test]
    fn compatible_lists_additions() {
        let report = Report {
            violations: vec![],
            additions: vec!["greet.v1.Greeter.SayGoodbye".into(), "greet.v1.Mood".into()],
        };
        assert_eq!(
            text(&report, Style { colour: false }),
            "✓ compatible (WIRE_JSON): no breaking changes in v2 against v1; 2 additions\n\
             \x20 + greet.v1.Greeter.SayGoodbye\n\
             \x20 + greet.v1.Mood\n"
        );
        assert_eq!(
            text(&Report::default(), Style { colour: false }),
            "✓ compatible (WIRE_JSON): no breaking changes in v2 against v1; no additions\n"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let coloured = text(&breaking(), Style { colour: true });
        assert!(
            coloured.contains("\x1b[31m✗ 2 breaking changes\x1b[0m"),
            "{coloured}"
        );
    }

    #[test]
    fn json_has_the_documented_shape() {
        let mut out = Vec::new();
        write_json(&outcome(&breaking()), &mut out).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["compatible"], false);
        assert_eq!(json["category"], "WIRE_JSON");
        assert_eq!(
            json["additions"],
            serde_json::json!(["greet.v1.HelloRequest.locale"])
        );
        let first = &json["violations"][0];
        assert_eq!(first["rule"], "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED");
        assert_eq!(first["category"], "WIRE_JSON");
        assert_eq!(
            first["categories"],
            serde_json::json!(["FILE", "PACKAGE", "WIRE_JSON"])
        );
        assert_eq!(
            first["location"],
            serde_json::json!({"file": "greet/v1/greeter.proto", "element": "greet.v1.HelloRequest", "number": 2})
        );
        assert_eq!(
            first["message"],
            "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED happened to greet.v1.HelloRequest"
        );
        assert_eq!(json["violations"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn compatible_json() {
        let mut out = Vec::new();
        write_json(&outcome(&Report::default()), &mut out).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["compatible"], true);
        assert_eq!(json["violations"], serde_json::json!([]));
    }
}
