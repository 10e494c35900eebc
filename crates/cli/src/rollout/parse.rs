//! The command line's own little languages: durations (`500ms`, `5s`, `2m`, `1h`) and canary
//! steps (`10,pause:5s,analysis:3,50,pause,100`). Both are clap value parsers, so clap puts the
//! flag's name in front of the message: `invalid value 'x' for '--steps <STEPS>': …`.

use std::time::Duration;

use flotilla_proto::rollout::v1 as pb;

/// A duration: one number (decimals allowed) and one unit, `ms`, `s`, `m` or `h`. `1.5s` is
/// 1,500 ms; anything finer than a millisecond is refused rather than rounded, since the
/// orchestrator keeps milliseconds.
///
/// humantime would also take `1h 30m` and `3days`; the orchestrator's settings are all seconds
/// to minutes, so one unit is enough and keeps the dependency out.
pub fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty; write e.g. 500ms, 5s, 2m or 1h".to_owned());
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{text:?} has no unit; write e.g. 500ms, 5s, 2m or 1h"))?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!("{text:?} is not a number followed by a unit"));
    }
    let unit_ms: u128 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?}; the units are ms, s, m and h"
            ));
        }
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) || fraction.contains('.') {
        return Err(format!("{text:?} is not a number followed by a unit"));
    }
    // Exact decimal arithmetic: the value in units of 10^-digits, times the unit's milliseconds.
    let digits = u32::try_from(fraction.len()).map_err(|_| format!("{text:?} is too precise"))?;
    let scale = 10u128
        .checked_pow(digits)
        .ok_or_else(|| format!("{text:?} is too precise"))?;
    let scaled: u128 = format!("{whole}{fraction}")
        .parse()
        .map_err(|_| format!("{text:?} is too long"))?;
    let total = scaled
        .checked_mul(unit_ms)
        .ok_or_else(|| format!("{text:?} is too long"))?;
    if total % scale != 0 {
        return Err(format!("{text:?} is not a whole number of milliseconds"));
    }
    let ms = u64::try_from(total / scale).map_err(|_| format!("{text:?} is too long"))?;
    Ok(Duration::from_millis(ms))
}

/// The canary's steps, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct Steps(pub Vec<pb::CanaryStep>);

/// Canary steps, comma-separated: a bare number is a weight in percent (`10` or `10%`, 1 to
/// 100), `pause` waits until promoted, `pause:DUR` waits that long, `analysis:N` waits for N
/// passing analysis intervals (1 to 100).
pub fn steps(text: &str) -> Result<Steps, String> {
    if text.trim().is_empty() {
        return Err("no steps; write e.g. 10,pause:5s,analysis:3,50,pause,100".to_owned());
    }
    text.split(',')
        .enumerate()
        .map(|(i, item)| {
            step(item.trim()).map_err(|why| format!("step {} {:?}: {why}", i + 1, item.trim()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Steps)
}

fn step(item: &str) -> Result<pb::CanaryStep, String> {
    use pb::canary_step::Step;

    let step = match item.split_once(':') {
        None if item.is_empty() => return Err("is empty".to_owned()),
        None if item == "pause" => Step::Pause(pb::PauseStep { duration: None }),
        None if item == "analysis" => {
            return Err("needs a count of passing intervals, e.g. analysis:3".to_owned());
        }
        None => {
            let number = item.strip_suffix('%').unwrap_or(item);
            let weight: u32 = number.parse().map_err(|_| {
                "is neither a weight (1 to 100), pause, pause:DURATION nor analysis:N".to_owned()
            })?;
            if !(1..=100).contains(&weight) {
                return Err("a weight is 1 to 100 (percent)".to_owned());
            }
            Step::SetWeight(weight)
        }
        Some(("pause", text)) => {
            let duration = duration(text)?;
            if duration.is_zero() {
                return Err(
                    "a timed pause must be longer than 0; `pause` alone waits until promoted"
                        .to_owned(),
                );
            }
            Step::Pause(pb::PauseStep {
                duration: Some(proto_duration(duration)),
            })
        }
        Some(("analysis", text)) => {
            let intervals: u32 = text
                .parse()
                .map_err(|_| format!("{text:?} is not a count of intervals"))?;
            if !(1..=100).contains(&intervals) {
                return Err("an analysis step needs 1 to 100 passing intervals".to_owned());
            }
            Step::Analysis(pb::AnalysisStep { intervals })
        }
        Some((kind, _)) => {
            return Err(format!(
                "unknown step {kind:?}; only pause and analysis take a value"
            ));
        }
    };
    Ok(pb::CanaryStep { step: Some(step) })
}

/// A duration as protobuf carries it.
pub fn proto_duration(duration: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        // Below one billion, so it fits.
        nanos: duration.subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    use pb::canary_step::Step;

    use super::*;

    #[test]
    fn durations_in_every_unit() {
        for (text, ms) in [
            ("500ms", 500),
            ("0ms", 0),
            ("5s", 5_000),
            ("1.5s", 1_500),
            ("0.25s", 250),
            ("2m", 120_000),
            ("1.5m", 90_000),
            ("1h", 3_600_000),
            (" 30s ", 30_000),
        ] {
            assert_eq!(duration(text), Ok(Duration::from_millis(ms)), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_why() {
        for (text, why) in [
            ("5", "has no unit"),
            ("", "is empty"),
            ("5x", "unknown unit \"x\""),
            ("5 s", "unknown unit \" s\""),
            ("5sec", "unknown unit \"sec\""),
            ("s", "not a number"),
            ("1.s", "not a number"),
            (".5s", "not a number"),
            ("1.2.3s", "not a number"),
            ("-5s", "not a number"),
            ("1.5ms", "not a whole number of milliseconds"),
            ("99999999999999999999999999999999999999999h", "too long"),
            ("5124095576030432h", "too long"),
        ] {
            let error = duration(text).unwrap_err();
            assert!(error.contains(why), "{text:?}: {error}");
        }
    }

    fn weight(w: u32) -> pb::CanaryStep {
        pb::CanaryStep {
            step: Some(Step::SetWeight(w)),
        }
    }

    #[test]
    fn the_documented_example() {
        let Steps(steps) = steps("10,pause:5s,analysis:3,50,pause,100").unwrap();
        assert_eq!(
            steps,
            vec![
                weight(10),
                pb::CanaryStep {
                    step: Some(Step::Pause(pb::PauseStep {
                        duration: Some(prost_types::Duration {
                            seconds: 5,
                            nanos: 0
                        })
                    }))
                },
                pb::CanaryStep {
                    step: Some(Step::Analysis(pb::AnalysisStep { intervals: 3 }))
                },
                weight(50),
                pb::CanaryStep {
                    step: Some(Step::Pause(pb::PauseStep { duration: None }))
                },
                weight(100),
            ]
        );
    }

    #[test]
    fn spaces_and_percent_signs_are_allowed() {
        assert_eq!(
            steps(" 25% , pause:1.5s ,100").unwrap().0,
            vec![
                weight(25),
                pb::CanaryStep {
                    step: Some(Step::Pause(pb::PauseStep {
                        duration: Some(prost_types::Duration {
                            seconds: 1,
                            nanos: 500_000_000
                        })
                    }))
                },
                weight(100),
            ]
        );
    }

    #[test]
    fn bad_steps_name_the_step_and_the_reason() {
        for (text, why) in [
            ("", "no steps"),
            ("10,,50", "step 2 \"\": is empty"),
            ("10,", "step 2 \"\": is empty"),
            ("0", "step 1 \"0\": a weight is 1 to 100"),
            ("10,101", "step 2 \"101\": a weight is 1 to 100"),
            ("ten", "step 1 \"ten\": is neither a weight"),
            ("-5", "step 1 \"-5\": is neither a weight"),
            ("10,analysis", "step 2 \"analysis\": needs a count"),
            ("analysis:0", "an analysis step needs 1 to 100"),
            ("analysis:x", "\"x\" is not a count of intervals"),
            ("pause:5", "step 1 \"pause:5\": \"5\" has no unit"),
            ("pause:0s", "must be longer than 0"),
            ("wait:5s", "unknown step \"wait\""),
        ] {
            let error = steps(text).unwrap_err();
            assert!(error.contains(why), "{text:?}: {error}");
        }
    }

    #[test]
    fn proto_durations_split_seconds_and_nanos() {
        assert_eq!(
            proto_duration(Duration::from_millis(2_250)),
            prost_types::Duration {
                seconds: 2,
                nanos: 250_000_000
            }
        );
    }
}
