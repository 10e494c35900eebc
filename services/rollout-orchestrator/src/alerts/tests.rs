use flotilla_model::{Figure, Gate, Halt, RolloutState, Timestamp};

use super::*;

#[test]
fn signatures_are_hmac_sha256_of_the_time_and_body() {
    // Python's `hmac.new(b"whsec_test", b'1764979200.{"a":1}', hashlib.sha256).hexdigest()`.
    assert_eq!(
        sign(b"whsec_test", 1_764_979_200, br#"{"a":1}"#),
        "t=1764979200,v1=2d8b166645f5f4e3e800ca3da8597825d07e05f33d6ae463ef48c9d05ab7fcb0"
    );
}

#[test]
fn receivers_verify_the_body_the_key_and_the_age() {
    let key = b"whsec_test";
    let body = br#"{"a":1}"#;
    let header = sign(key, 1_000, body);
    let tolerance = Duration::from_secs(300);
    assert_eq!(
        verify_signature(key, &header, body, 1_100, tolerance),
        Ok(())
    );
    assert_eq!(
        verify_signature(key, &header, br#"{"a":2}"#, 1_100, tolerance),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(b"other", &header, body, 1_100, tolerance),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(key, &header, body, 1_400, tolerance),
        Err(SignatureError::Stale {
            age_seconds: 400,
            tolerance_seconds: 300
        })
    );
    for malformed in ["", "v1=00", "t=1000", "t=x,v1=00", "t=1000,v1=zz"] {
        assert_eq!(
            verify_signature(key, malformed, body, 1_000, tolerance),
            Err(SignatureError::Malformed),
            "{malformed:?}"
        );
    }
}

#[test]
fn event_kinds_are_parsed_case_blind_or_all() {
    assert_eq!(
        parse_event_kinds("started, aborted").unwrap(),
        [EventKind::Started, EventKind::Aborted]
    );
    assert_eq!(parse_event_kinds("ALL").unwrap(), EVENT_KINDS);
    let error = parse_event_kinds("STARTED,DONE").unwrap_err();
    assert!(error.to_string().contains("\"DONE\""), "{error}");
    assert!(error.to_string().contains("OWNER_CHANGED"), "{error}");
}

fn settings(urls: &[&str], secret: &str) -> WebhookSettings {
    WebhookSettings {
        urls: urls.iter().map(|u| (*u).to_owned()).collect(),
        secret: secret.into(),
        events: DEFAULT_EVENTS.to_vec(),
        retry_for: Duration::from_secs(1),
        attempt_timeout: Duration::from_secs(1),
        max_backoff: MAX_BACKOFF,
    }
}

#[tokio::test]
async fn webhook_urls_and_the_secret_are_checked_at_start() {
    let metrics = OrchestratorMetrics::unregistered;
    assert!(matches!(
        Alerts::start(settings(&["http://127.0.0.1:1/hook"], ""), metrics()),
        Err(WebhookConfigError::NoSecret)
    ));
    for (url, reason) in [
        ("https://hooks.example/x", "only http://"),
        ("http://user:pw@hooks.example/x", "user info"),
        ("not a url", "unparsable"),
    ] {
        let Err(error) = Alerts::start(settings(&[url], "s"), metrics()) else {
            panic!("{url} is refused");
        };
        assert!(error.to_string().contains(reason), "{url}: {error}");
        assert!(error.to_string().contains(url), "{url}: {error}");
    }
    let alerts = Alerts::start(settings(&[], "s"), metrics()).unwrap();
    assert!(alerts.inner.is_none(), "no URLs, no webhooks");
    let alerts = Alerts::start(
        settings(&["http://127.0.0.1:1/hook?token=t0ps3cret"], "s"),
        metrics(),
    )
    .unwrap();
    let shown = format!("{alerts:?}");
    assert!(shown.contains("http://127.0.0.1:1/hook"), "{shown}");
    assert!(
        !shown.contains("t0ps3cret"),
        "a query may hold a token: {shown}"
    );
}

#[test]
fn payloads_carry_the_event_the_rollout_and_the_halts_figures() {
    let rollout = aborted_rollout();
    let event = RolloutEvent {
        sequence: 7,
        time: Timestamp(1_764_979_200_123),
        kind: EventKind::Aborted,
        message: "aborted; all traffic on 1.0.0".into(),
        halt: Some(Halt {
            gate: Gate::Analysis,
            message: "error ratio above the limit".into(),
            figures: vec![Figure {
                name: "error_ratio".into(),
                version: "1.2.0".into(),
                value: 0.3,
                threshold: 0.05,
            }],
            query: "instances' /metrics".into(),
            time: Timestamp(1_764_979_200_000),
        }),
        step_index: 2,
    };
    let json = payload(&rollout, &event);
    assert_eq!(json["id"], format!("{}:7", rollout.id));
    assert_eq!(json["type"], "rollout.aborted");
    assert_eq!(json["time"], "2025-12-06T00:00:00.123Z");
    assert_eq!(json["rollout"]["service"], rollout.service.as_str());
    assert_eq!(json["rollout"]["state"], "ABORTED");
    assert_eq!(json["event"]["sequence"], 7);
    assert_eq!(json["event"]["halt"]["gate"], "ANALYSIS");
    assert_eq!(json["event"]["halt"]["figures"][0]["value"], 0.3);
    assert_eq!(json["event"]["halt"]["figures"][0]["threshold"], 0.05);
}

fn aborted_rollout() -> Rollout {
    let mut rollout = flotilla_model::fixtures::canary_rollout(Timestamp(1_764_979_200_000));
    rollout.state = RolloutState::Aborted;
    rollout
}
