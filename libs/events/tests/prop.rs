//! Property tests for the event model: envelope decoding, envelope round trips, phone-number
//! normalisation, aggregate stream ids and the hangup-cause tables.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use prost::Message;
use uuid::Uuid;
use waihu_events::{
    from_timestamp, header_value, pb, timestamp, Aggregate, DecodeError, Decoded, Event, EventMeta,
    RecordedEvent, EVENT_TYPES, MAX_ENVELOPE_FIELD_BYTES, SCHEMA_VERSION,
};
use waihu_telephony::hangup;
use waihu_telephony::phone::PhoneNumber;

/// Default case count (overridable with PROPTEST_CASES); no regression files are written.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn uuid() -> BoxedStrategy<Uuid> {
    prop_oneof![
        3 => any::<u128>().prop_map(Uuid::from_u128),
        1 => Just(Uuid::nil()),
        1 => Just(Uuid::max()),
    ]
    .boxed()
}

/// Strings with arbitrary unicode, control characters, newlines and NULs.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        any::<String>(),
        Just(String::new()),
        Just("\n".to_string()),
        Just("\0".to_string()),
        "[\\x00-\\x7f]{0,24}",
        "\\PC{0,8}[\\n\\r\\t\\x00]\\PC{0,8}",
        "[\u{4e00}-\u{9fff}\u{1F600}-\u{1F64F}]{0,8}",
        header_text(),
        "[a-z]{250,300}",
    ]
    .boxed()
}

/// What an envelope header field may hold: no control characters, at most
/// `MAX_ENVELOPE_FIELD_BYTES` bytes (including strings right at the limit).
fn header_text() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        "\\PC{0,40}",
        "[\u{4e00}-\u{9fff}\u{1F600}-\u{1F64F}]{0,8}",
        "[a-z]{256}",
        "[\u{4e00}-\u{9fff}]{85}",
    ]
    .prop_filter("fits an envelope field", |s| {
        s.len() <= MAX_ENVELOPE_FIELD_BYTES && !s.chars().any(char::is_control)
    })
    .boxed()
}

/// UUIDs spelled every way `Uuid::parse_str` might see them, plus garbage.
fn uuid_text() -> BoxedStrategy<String> {
    prop_oneof![
        uuid().prop_map(|u| u.to_string()),
        uuid().prop_map(|u| u.to_string().to_uppercase()),
        uuid().prop_map(|u| u.simple().to_string()),
        uuid().prop_map(|u| u.urn().to_string()),
        uuid().prop_map(|u| u.braced().to_string()),
        text(),
    ]
    .boxed()
}

fn aggregate() -> BoxedStrategy<Aggregate> {
    prop_oneof![
        uuid().prop_map(Aggregate::Task),
        uuid().prop_map(Aggregate::Call),
        (uuid(), any::<u32>()).prop_map(|(t, n)| Aggregate::Contact(t, n)),
    ]
    .boxed()
}

fn stream_id_text() -> BoxedStrategy<String> {
    prop_oneof![
        aggregate().prop_map(|a| a.stream_id()),
        (uuid_text(), text()).prop_map(|(u, n)| format!("contact-{u}-{n}")),
        (
            prop::sample::select(vec!["task-", "call-", "contact-"]),
            text()
        )
            .prop_map(|(p, t)| format!("{p}{t}")),
        text(),
    ]
    .boxed()
}

/// Any time chrono can represent, to the nanosecond (no leap seconds).
fn instant() -> BoxedStrategy<DateTime<Utc>> {
    let min = DateTime::<Utc>::MIN_UTC.timestamp();
    let max = DateTime::<Utc>::MAX_UTC.timestamp();
    prop_oneof![
        (min..=max, 0u32..1_000_000_000),
        (-4_000_000_000i64..=8_000_000_000, 0u32..1_000_000_000),
    ]
    .prop_map(|(s, n)| DateTime::from_timestamp(s, n).expect("in chrono's range"))
    .boxed()
}

/// Protobuf timestamps including out-of-range seconds and nanos.
fn raw_timestamp() -> BoxedStrategy<Option<prost_types::Timestamp>> {
    let seconds = prop_oneof![
        any::<i64>(),
        -100_000_000_000i64..100_000_000_000,
        prop::sample::select(vec![
            i64::MIN,
            i64::MAX,
            0,
            -1,
            8_210_266_876_799,
            8_210_266_876_800
        ]),
    ];
    let nanos = prop_oneof![
        any::<i32>(),
        0i32..1_000_000_000,
        prop::sample::select(vec![
            i32::MIN,
            i32::MAX,
            -1,
            0,
            999_999_999,
            1_000_000_000,
            1_999_999_999,
            2_000_000_000
        ]),
    ];
    proptest::option::weighted(0.9, (seconds, nanos))
        .prop_map(|o| o.map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }))
        .boxed()
}

fn hangup_cause() -> impl Strategy<Value = pb::HangupCause> {
    (any::<u32>(), text(), text()).prop_map(|(q850, name, raw)| pb::HangupCause { q850, name, raw })
}

fn call_released() -> impl Strategy<Value = pb::CallReleased> {
    (
        uuid(),
        uuid(),
        any::<u32>(),
        proptest::option::of(hangup_cause()),
        any::<bool>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(call, task, contact_no, cause, answered, ring_ms, talk_ms)| pb::CallReleased {
                call_id: call.to_string(),
                task_id: task.to_string(),
                contact_no,
                cause,
                answered,
                ring_ms,
                talk_ms,
                ..Default::default()
            },
        )
}

fn task_spec() -> impl Strategy<Value = pb::TaskSpec> {
    (
        (text(), text(), text()),
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
        proptest::option::of(instant()),
        text(),
        prop::collection::vec(text(), 0..4),
        text(),
        (text(), text(), prop::collection::vec(any::<u64>(), 0..4)),
    )
        .prop_map(
            |(
                (name, description, script_id),
                (priority, recall_count, recall_interval_seconds, daily_call_limit),
                start,
                caller_line,
                tags,
                source,
                (call_script, caller_id, device_ids),
            )| pb::TaskSpec {
                name,
                description,
                script_id,
                priority,
                recall_count,
                recall_interval_seconds,
                daily_call_limit,
                scheduled_start: start.map(waihu_events::timestamp),
                caller_line,
                tags,
                source,
                call_script,
                caller_id,
                device_ids,
                retry: (recall_count % 2 == 1).then(|| pb::RetryPolicy {
                    rules: vec![pb::RetryRule {
                        causes: vec![17, 19],
                        tries: recall_count,
                        interval_seconds: recall_interval_seconds,
                    }],
                    retry_rejected: daily_call_limit % 2 == 1,
                }),
                window: (recall_count % 3 == 1).then(|| pb::CallingWindow {
                    hours: vec!["09:00-12:00".into(), "14:00-20:00".into()],
                    weekdays: vec![1, 2, 3, 4, 5],
                    holidays: vec!["2026-10-01".into()],
                    time_zone: "Asia/Shanghai".into(),
                }),
                number_city_limit: recall_count % 4 == 1,
                campaign_size: daily_call_limit % 10_001,
            },
        )
}

fn contact() -> impl Strategy<Value = pb::Contact> {
    (
        any::<u32>(),
        text(),
        text(),
        text(),
        prop::collection::vec((text(), text()), 0..4),
    )
        .prop_map(
            |(contact_no, name, phone, external_id, variables)| pb::Contact {
                contact_no,
                name,
                phone,
                external_id,
                variables: variables.into_iter().collect(),
            },
        )
}

fn event() -> BoxedStrategy<Event> {
    prop_oneof![
        4 => call_released().prop_map(Event::CallReleased),
        1 => (uuid(), proptest::option::of(task_spec())).prop_map(|(t, spec)| {
            Event::TaskCreated(pb::TaskCreated { task_id: t.to_string(), spec, created_by: String::new() })
        }),
        1 => (uuid(), prop::collection::vec(contact(), 0..4)).prop_map(|(t, contacts)| {
            Event::ContactsAdded(pb::ContactsAdded { task_id: t.to_string(), contacts })
        }),
        1 => uuid().prop_map(|t| Event::TaskStarted(pb::TaskStarted { task_id: t.to_string() })),
        1 => (uuid(), text()).prop_map(|(t, reason)| {
            Event::TaskCancelled(pb::TaskCancelled { task_id: t.to_string(), reason })
        }),
        1 => (uuid(), uuid(), any::<u32>(), text(), text(), any::<u32>(), text(), text()).prop_map(
            |(c, t, contact_no, phone, line_id, attempt, customer_id, order_id)| {
                Event::CallRequested(pb::CallRequested {
                    call_id: c.to_string(),
                    task_id: t.to_string(),
                    contact_no,
                    phone,
                    line_id,
                    attempt,
                    customer_id,
                    order_id,
                    ..Default::default()
                })
            }
        ),
        1 => (uuid(), uuid(), any::<u32>(), text()).prop_map(|(c, t, contact_no, provider_call_id)| {
            Event::CallDialing(pb::CallDialing {
                call_id: c.to_string(),
                task_id: t.to_string(),
                contact_no,
                provider_call_id,
..Default::default()
            })
        }),
        1 => (uuid(), any::<u32>(), any::<i32>(), any::<u32>(), text()).prop_map(
            |(t, contact_no, outcome, attempts, last_call_id)| {
                Event::ContactFinished(pb::ContactFinished {
                    task_id: t.to_string(),
                    contact_no,
                    outcome,
                    attempts,
                    last_call_id,
                })
            }
        ),
    ]
    .boxed()
}

/// A valid event with arbitrary metadata.
fn recorded_event() -> BoxedStrategy<RecordedEvent> {
    (
        (header_text(), aggregate(), any::<u64>(), instant()),
        (header_text(), header_text(), proptest::option::of(uuid())),
        proptest::option::of(text()),
        event(),
    )
        .prop_map(
            |((tenant, aggregate, version, at), (correlation, causation, task), det, event)| {
                let mut meta = EventMeta::new(tenant, aggregate, version);
                meta.occurred_at = at;
                meta.correlation_id = correlation;
                meta.causation_id = causation;
                if let Some(task) = task {
                    meta = meta.with_task(task);
                }
                if let Some(name) = det {
                    meta = meta.with_deterministic_id(&name);
                }
                RecordedEvent::new(meta, event)
            },
        )
        .boxed()
}

/// Payload bytes: garbage, or a real payload of some (possibly other) event type.
fn payload() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        recorded_event().prop_map(|e| e.to_envelope().payload.to_vec()),
    ]
    .boxed()
}

/// A structurally valid envelope whose fields hold anything: a real event's envelope with
/// some fields (each with a fair chance) replaced by arbitrary values, so that decoding gets
/// past the early checks often enough to exercise the later ones.
fn arbitrary_envelope() -> BoxedStrategy<pb::Envelope> {
    use proptest::option::weighted;
    const P: f64 = 0.15;
    let event_type = prop_oneof![
        3 => prop::sample::select(EVENT_TYPES.to_vec()).prop_map(str::to_string),
        1 => text(),
        1 => Just(String::new()),
    ];
    let schema_version = prop_oneof![
        3 => 0..=SCHEMA_VERSION + 1,
        1 => any::<u32>(),
    ];
    let task_id = prop_oneof![Just(String::new()), uuid_text()];
    (
        recorded_event(),
        (
            weighted(P, uuid_text()),
            weighted(P, event_type),
            weighted(0.3, schema_version),
            weighted(P, text()),
            weighted(P, stream_id_text()),
            weighted(P, raw_timestamp()),
        ),
        (
            weighted(P, text()),
            weighted(P, text()),
            weighted(P, text()),
            weighted(P, text()),
            weighted(P, task_id),
            weighted(0.3, payload()),
        ),
    )
        .prop_map(
            |(
                e,
                (event_id, event_type, schema_version, tenant_id, stream_id, occurred_at),
                (correlation_id, causation_id, traceparent, tracestate, task_id, payload),
            )| {
                let mut env = e.to_envelope();
                env.event_id = event_id.unwrap_or(env.event_id);
                env.event_type = event_type.unwrap_or(env.event_type);
                env.schema_version = schema_version.unwrap_or(env.schema_version);
                env.tenant_id = tenant_id.unwrap_or(env.tenant_id);
                env.stream_id = stream_id.unwrap_or(env.stream_id);
                env.occurred_at = occurred_at.unwrap_or(env.occurred_at);
                env.correlation_id = correlation_id.unwrap_or(env.correlation_id);
                env.causation_id = causation_id.unwrap_or(env.causation_id);
                env.traceparent = traceparent.unwrap_or(env.traceparent);
                env.tracestate = tracestate.unwrap_or(env.tracestate);
                env.task_id = task_id.unwrap_or(env.task_id);
                env.payload = payload.map(Into::into).unwrap_or(env.payload);
                env
            },
        )
        .boxed()
}

fn decode_err(e: waihu_events::DecodeError) -> TestCaseError {
    TestCaseError::fail(format!("decode failed: {e}"))
}

/// Asserts every field of two recorded events is equal.
fn assert_same_event(a: &RecordedEvent, b: &RecordedEvent) -> Result<(), TestCaseError> {
    prop_assert_eq!(&a.event, &b.event);
    prop_assert_eq!(a.type_name(), b.type_name());
    prop_assert_eq!(a.meta.event_id, b.meta.event_id);
    prop_assert_eq!(&a.meta.tenant_id, &b.meta.tenant_id);
    prop_assert_eq!(a.meta.aggregate, b.meta.aggregate);
    prop_assert_eq!(a.meta.stream_version, b.meta.stream_version);
    prop_assert_eq!(a.meta.occurred_at, b.meta.occurred_at);
    prop_assert_eq!(&a.meta.correlation_id, &b.meta.correlation_id);
    prop_assert_eq!(&a.meta.causation_id, &b.meta.causation_id);
    prop_assert_eq!(a.meta.task_id, b.meta.task_id);
    prop_assert_eq!(&a.traceparent, &b.traceparent);
    prop_assert_eq!(&a.tracestate, &b.tracestate);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Envelopes
// ---------------------------------------------------------------------------------------------

/// Whether a string may stand in an envelope header field.
fn fits_header(s: &str, max: usize) -> bool {
    s.len() <= max && !s.chars().any(char::is_control)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = RecordedEvent::decode(&bytes);
        let d = Decoded::decode(&bytes);
        let shared = Decoded::decode_shared(bytes.into());
        prop_assert_eq!(format!("{d:?}"), format!("{shared:?}"));
    }

    #[test]
    fn decoding_a_corrupted_envelope_never_panics(
        e in recorded_event(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = e.encode();
        if !bytes.is_empty() {
            for (at, b) in edits {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        let _ = RecordedEvent::decode(&bytes);
        let d = Decoded::decode(&bytes);
        // Shared bytes decode to the same (the store writer's way).
        let shared = Decoded::decode_shared(bytes.into());
        prop_assert_eq!(format!("{d:?}"), format!("{shared:?}"));
    }

    #[test]
    fn decoding_an_envelope_with_arbitrary_fields_never_panics_and_accepts_only_valid_headers(
        env in arbitrary_envelope(),
    ) {
        let bytes = env.encode_to_vec();
        if let Ok(d) = Decoded::decode(&bytes) {
            // The header checks documented on `Decoded::from_envelope`.
            prop_assert!(!env.event_type.is_empty());
            prop_assert!(fits_header(&env.event_type, 100));
            for field in [&env.tenant_id, &env.correlation_id, &env.causation_id, &env.traceparent, &env.tracestate] {
                prop_assert!(fits_header(field, MAX_ENVELOPE_FIELD_BYTES), "accepted {:?}", field);
            }
            let meta = d.meta();
            prop_assert_eq!(&meta.tenant_id, &env.tenant_id);
            prop_assert_eq!(&meta.correlation_id, &env.correlation_id);
            prop_assert_eq!(&meta.causation_id, &env.causation_id);
            prop_assert_eq!(meta.stream_version, env.stream_version);
            prop_assert_eq!(meta.task_id.is_none(), env.task_id.is_empty());
            prop_assert_eq!(d.event_type(), env.event_type.as_str());
            let ts = env.occurred_at.as_ref().expect("accepted envelopes have a time");
            prop_assert_eq!(Some(meta.occurred_at), from_timestamp(ts));
            prop_assert_eq!(timestamp(meta.occurred_at), *ts);
        }
        // from_envelope is the same path without the protobuf layer.
        let _ = RecordedEvent::from_envelope(env.clone());
        let _ = Decoded::from_envelope(env);
    }

    #[test]
    fn the_strict_and_lenient_decoders_agree(env in arbitrary_envelope()) {
        let strict = RecordedEvent::from_envelope(env.clone());
        let lenient = Decoded::from_envelope(env.clone());
        match (strict, lenient) {
            (Ok(a), Ok(Decoded::Known(b))) => {
                assert_same_event(&a, &b)?;
                prop_assert!(env.schema_version <= SCHEMA_VERSION);
                prop_assert_eq!(a.type_name(), env.event_type.as_str());
            }
            (Err(_), Ok(Decoded::Unknown(u))) => {
                // Kept only because of a newer schema or an unknown type, never a bad payload.
                let newer = env.schema_version > SCHEMA_VERSION;
                let unknown_type = !EVENT_TYPES.contains(&env.event_type.as_str());
                prop_assert!(newer || unknown_type, "{:?}", u);
                match &u.error {
                    DecodeError::SchemaVersion(v) => prop_assert!(newer && *v == env.schema_version),
                    DecodeError::UnknownType(t) => {
                        prop_assert!(!newer && unknown_type && *t == env.event_type);
                    }
                    other => prop_assert!(false, "unknown event kept for {:?}", other),
                }
                prop_assert_eq!(&u.event_type, &env.event_type);
                prop_assert_eq!(u.schema_version, env.schema_version);
            }
            (Err(_), Err(_)) => {}
            (strict, lenient) => {
                prop_assert!(false, "strict {:?} but lenient {:?}", strict, lenient);
            }
        }
    }

    #[test]
    fn a_decoded_envelope_reencodes_to_the_same_event(env in arbitrary_envelope()) {
        if let Ok(first) = RecordedEvent::decode(&env.encode_to_vec()) {
            let second = RecordedEvent::decode(&first.encode()).map_err(decode_err)?;
            assert_same_event(&first, &second)?;
        }
    }

    #[test]
    fn valid_events_round_trip_through_the_envelope(e in recorded_event()) {
        let back = RecordedEvent::decode(&e.encode()).map_err(decode_err)?;
        assert_same_event(&e, &back)?;
        match Decoded::decode(&e.encode()).map_err(decode_err)? {
            Decoded::Known(k) => assert_same_event(&e, &k)?,
            Decoded::Unknown(u) => prop_assert!(false, "own event decoded as unknown: {:?}", u),
        }
    }

    #[test]
    fn an_envelope_header_field_with_a_control_character_or_too_long_is_rejected(
        e in recorded_event(),
        field in 0usize..5,
        bad in prop_oneof![
            "\\PC{0,8}[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}]\\PC{0,8}",
            "[a-z\u{4e00}-\u{9fff}]{257,300}".prop_filter("too long", |s| s.len() > MAX_ENVELOPE_FIELD_BYTES),
        ],
    ) {
        let mut env = e.to_envelope();
        let slot = match field {
            0 => &mut env.tenant_id,
            1 => &mut env.correlation_id,
            2 => &mut env.causation_id,
            3 => &mut env.traceparent,
            _ => &mut env.tracestate,
        };
        *slot = bad.clone();
        prop_assert!(matches!(Decoded::from_envelope(env.clone()), Err(DecodeError::Field(..))), "{:?} accepted", bad);
        prop_assert!(RecordedEvent::decode(&env.encode_to_vec()).is_err());
    }

    #[test]
    fn call_released_round_trips_with_every_field(
        released in call_released(),
        call in uuid(),
        task in uuid(),
        version in any::<u64>(),
        at in instant(),
    ) {
        let meta = EventMeta::new("tenant", Aggregate::Call(call), version).with_task(task);
        let mut meta = meta.with_deterministic_id(&format!("{call}/released"));
        meta.occurred_at = at;
        let e = RecordedEvent::new(meta, Event::CallReleased(released.clone()));
        let back = RecordedEvent::decode(&e.encode()).map_err(decode_err)?;
        prop_assert_eq!(back.event, Event::CallReleased(released));
        prop_assert_eq!(back.meta.event_id, e.meta.event_id);
        prop_assert_eq!(back.meta.aggregate, Aggregate::Call(call));
        prop_assert_eq!(back.meta.stream_version, version);
        prop_assert_eq!(back.meta.tenant_id, "tenant");
        prop_assert_eq!(back.meta.task_id, Some(task));
        prop_assert_eq!(back.meta.occurred_at, at);
    }

    #[test]
    fn timestamps_round_trip_and_out_of_range_nanos_are_rejected(
        at in instant(),
        seconds in any::<i64>(),
        bad_nanos in prop_oneof![i32::MIN..0, 1_000_000_000..=i32::MAX],
    ) {
        prop_assert_eq!(from_timestamp(&timestamp(at)), Some(at));
        let bad = prost_types::Timestamp { seconds, nanos: bad_nanos };
        prop_assert_eq!(from_timestamp(&bad), None);
    }

    #[test]
    fn header_value_has_no_control_characters_and_fits_in_max(s in text(), max in 0usize..300) {
        let v = header_value(&s, max);
        prop_assert!(v.len() <= max, "{:?} -> {:?}", s, v);
        prop_assert!(!v.chars().any(char::is_control), "{:?} -> {:?}", s, v);
        if fits_header(&s, max) {
            prop_assert_eq!(&v, &s);
        }
        // A cut keeps a prefix of the fully escaped value.
        let full = header_value(&s, usize::MAX);
        prop_assert!(full.starts_with(&v), "{:?} -> {:?} / {:?}", s, v, full);
    }
}

// ---------------------------------------------------------------------------------------------
// Phone numbers
// ---------------------------------------------------------------------------------------------

/// Characters the parser skips inside a number.
const SEPARATORS: &[&str] = &[" ", "-", "(", ")", "."];

/// Surrounding whitespace that `str::trim` removes (including the ideographic space).
fn padding() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![" ", "\t", "\n", "\r\n", "\u{3000}"]),
        0..3,
    )
    .prop_map(|v| v.concat())
}

/// `digits` with separators between (and after) arbitrary digits.
fn with_separators(digits: String) -> impl Strategy<Value = String> {
    let n = digits.len();
    prop::collection::vec(
        proptest::option::weighted(0.3, prop::sample::select(SEPARATORS.to_vec())),
        n + 1,
    )
    .prop_map(move |seps| {
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if let Some(s) = seps[i] {
                out.push_str(s);
            }
            out.push(c);
        }
        if let Some(s) = seps[n] {
            out.push_str(s);
        }
        out
    })
}

/// How a number's national part may be introduced: bare, or with +86 / 0086.
fn spelled(national: String, prefixes: Vec<&'static str>) -> impl Strategy<Value = String> {
    (
        padding(),
        prop::sample::select(prefixes),
        with_separators(national),
        padding(),
    )
        .prop_map(|(lead, prefix, body, trail)| format!("{lead}{prefix}{body}{trail}"))
}

fn mobile_national() -> impl Strategy<Value = String> {
    "1[3-9][0-9]{9}"
}

fn mobile_spelling() -> impl Strategy<Value = (String, String)> {
    mobile_national().prop_flat_map(|n| {
        let expected = format!("+86{n}");
        spelled(
            n,
            vec!["", "+86", "+86 ", "+86-", "0086", "0086 ", "(0086)"],
        )
        .prop_map(move |s| (expected.clone(), s))
    })
}

/// A landline as `(area, number)`: Beijing's 10, the 2x areas, or a 3-digit area.
fn landline() -> impl Strategy<Value = (String, String)> {
    let area = prop_oneof![Just("10".to_string()), "2[0-9]", "[3-9][0-9]{2}",];
    (area, "[2-9][0-9]{6,7}")
}

fn landline_spelling() -> impl Strategy<Value = (String, String)> {
    landline().prop_flat_map(|(area, number)| {
        let expected = format!("+86{area}{number}");
        prop_oneof![
            // Domestic: trunk prefix 0 + area code + number.
            (
                padding(),
                with_separators(format!("0{area}")),
                with_separators(number.clone())
            )
                .prop_map(|(lead, a, n)| format!("{lead}{a} {n}")),
            (Just(format!("(0{area}) ")), with_separators(number.clone()))
                .prop_map(|(a, n)| format!("{a}{n}")),
            // International: +86 / 0086 + area code (no trunk 0) + number.
            spelled(
                format!("{area}{number}"),
                vec!["+86", "+86 ", "0086", "0086-"]
            ),
        ]
        .prop_map(move |s| (expected.clone(), s))
    })
}

fn foreign_e164() -> impl Strategy<Value = String> {
    // Country codes other than 86; 7..=15 digits in all.
    "\\+(1|44|49|33|852|886|[2-7][0-9])[0-9]{6,11}"
}

/// Strings made of what the parser looks at: digits, separators and plus signs.
fn phone_like() -> impl Strategy<Value = String> {
    "[0-9 ()\\-.+]{0,24}"
}

fn parse_ok(raw: &str) -> Result<String, TestCaseError> {
    PhoneNumber::parse(raw)
        .map(PhoneNumber::into_string)
        .map_err(|e| TestCaseError::fail(format!("{raw:?} rejected: {e}")))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_mobile_spelling_normalises_to_the_same_e164_and_reparses_to_itself(
        (expected, raw) in mobile_spelling(),
    ) {
        let n = parse_ok(&raw)?;
        prop_assert_eq!(&n, &expected);
        prop_assert_eq!(parse_ok(&n)?, n);
    }

    #[test]
    fn every_landline_spelling_normalises_to_the_same_e164_and_reparses_to_itself(
        (expected, raw) in landline_spelling(),
    ) {
        let n = parse_ok(&raw)?;
        prop_assert_eq!(&n, &expected);
        prop_assert_eq!(parse_ok(&n)?, n);
    }

    #[test]
    fn foreign_e164_numbers_are_kept_as_they_are(
        e164 in foreign_e164(),
        digits_sep in any::<prop::sample::Index>(),
    ) {
        prop_assert_eq!(parse_ok(&e164)?, e164.clone());
        // The same number dialled with 00 instead of +, with a space somewhere in it.
        let mut dialled = format!("00{}", &e164[1..]);
        let at = 2 + digits_sep.index(dialled.len() - 1);
        dialled.insert(at, ' ');
        prop_assert_eq!(parse_ok(&dialled)?, e164);
    }

    #[test]
    fn every_accepted_number_reparses_to_itself(
        raw in prop_oneof![
            mobile_spelling().prop_map(|(_, s)| s),
            landline_spelling().prop_map(|(_, s)| s),
            foreign_e164(),
            "0[1-9][0-9]{8,10}",
            phone_like(),
        ],
    ) {
        if let Ok(n) = PhoneNumber::parse(&raw) {
            prop_assert_eq!(parse_ok(n.as_str())?, n.into_string(), "normal form of {:?}", raw);
        }
    }

    #[test]
    fn parsing_arbitrary_strings_never_panics(
        raw in prop_oneof![any::<String>(), phone_like(), text()],
    ) {
        if let Ok(n) = PhoneNumber::parse(&raw) {
            // Whatever is accepted comes out as E.164: '+' then 7..=15 digits, no leading 0.
            let s = n.as_str();
            prop_assert!(s.starts_with('+'), "{:?} -> {:?}", raw, s);
            let digits = &s[1..];
            prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{:?} -> {:?}", raw, s);
            prop_assert!((7..=15).contains(&digits.len()), "{:?} -> {:?}", raw, s);
            prop_assert!(!digits.starts_with('0'), "{:?} -> {:?}", raw, s);
        }
    }

    #[test]
    fn a_number_with_a_letter_in_it_is_rejected(
        (_, raw) in prop_oneof![mobile_spelling(), landline_spelling()],
        letter in "[a-zA-Z]|\\p{L}",
        at in any::<prop::sample::Index>(),
    ) {
        let chars: Vec<char> = raw.chars().collect();
        let i = at.index(chars.len() + 1);
        let bad: String = chars[..i].iter().copied().chain(letter.chars()).chain(chars[i..].iter().copied()).collect();
        prop_assert!(PhoneNumber::parse(&bad).is_err(), "{:?} accepted", bad);
    }

    #[test]
    fn a_mobile_with_too_few_or_too_many_digits_is_rejected(
        raw in prop_oneof!["1[3-9][0-9]{0,8}", "1[3-9][0-9]{10,18}"]
            .prop_flat_map(|n| spelled(n, vec!["", "+86", "+86 ", "0086"])),
    ) {
        prop_assert!(PhoneNumber::parse(&raw).is_err(), "{:?} accepted", raw);
    }

    #[test]
    fn fewer_than_7_or_more_than_17_digits_are_always_rejected(
        raw in phone_like(),
        extra in "[0-9]{18,24}",
    ) {
        let digits = raw.bytes().filter(u8::is_ascii_digit).count();
        if digits < 7 {
            prop_assert!(PhoneNumber::parse(&raw).is_err(), "{:?} accepted", raw);
        }
        let long = format!("{raw}{extra}");
        prop_assert!(PhoneNumber::parse(&long).is_err(), "{:?} accepted", long);
    }
}

// ---------------------------------------------------------------------------------------------
// Aggregates
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn aggregate_stream_ids_round_trip(a in aggregate()) {
        let parsed = Aggregate::parse_stream_id(&a.stream_id())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed, a);
    }

    #[test]
    fn parsing_arbitrary_stream_ids_never_panics_and_what_parses_has_a_canonical_id(
        s in stream_id_text(),
    ) {
        if let Ok(a) = Aggregate::parse_stream_id(&s) {
            let canonical = a.stream_id();
            let again = Aggregate::parse_stream_id(&canonical)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(again, a);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hangup causes
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_sip_final_failure_maps_to_a_named_nonzero_q850_cause(sip in 400u16..=699) {
        let c = hangup::from_sip(sip);
        prop_assert_ne!(c.q850, 0, "SIP {}", sip);
        prop_assert_ne!(c.name.as_str(), "UNKNOWN", "SIP {} -> Q.850 {}", sip, c.q850);
        prop_assert_eq!(c.name.as_str(), hangup::q850_name(c.q850));
        prop_assert_eq!(c.raw, format!("sip:{sip}"));
    }

    #[test]
    fn every_sip_success_maps_to_normal_clearing(sip in 200u16..=299) {
        let c = hangup::from_sip(sip);
        prop_assert_eq!(c.q850, 16);
        prop_assert_eq!(c.name.as_str(), "NORMAL_CLEARING");
    }

    #[test]
    fn from_sip_never_panics_and_names_its_cause_consistently(sip in any::<u16>()) {
        let c = hangup::from_sip(sip);
        prop_assert_eq!(c.q850, hangup::sip_to_q850(sip));
        prop_assert_eq!(c.name.as_str(), hangup::q850_name(c.q850));
        prop_assert_eq!(c.raw, format!("sip:{sip}"));
    }

    #[test]
    fn q850_name_is_the_table_name_or_unknown(q850 in prop_oneof![
        any::<u32>(),
        prop::sample::select(hangup::Q850_NAMES.iter().map(|(c, _)| *c).collect::<Vec<_>>()),
    ]) {
        let name = hangup::q850_name(q850);
        match hangup::Q850_NAMES.iter().find(|(c, _)| *c == q850) {
            Some((_, n)) => prop_assert_eq!(name, *n),
            None => prop_assert_eq!(name, "UNKNOWN"),
        }
    }

    #[test]
    fn cause_carries_its_q850_name_and_raw_code(q850 in any::<u32>(), raw in text()) {
        let c = hangup::cause(q850, raw.clone());
        prop_assert_eq!(c.q850, q850);
        prop_assert_eq!(c.name.as_str(), hangup::q850_name(q850));
        prop_assert_eq!(c.raw, raw);
    }
}
