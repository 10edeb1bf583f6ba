//! Screening results and overrides reach the dialer on different streams, in any order: each
//! number's change applies only over an older version, so the latest change wins whatever
//! arrives first.

mod common;

use waihu_dialer::db::Db;
use waihu_events::{pb, Aggregate, Event, EventMeta, RecordedEvent};
use waihu_testkit::TestEnv;

fn screened(phone: &str, validity: pb::NumberValidity, version: u64) -> RecordedEvent {
    RecordedEvent::new(
        EventMeta::new("acme", Aggregate::Screening(uuid::Uuid::new_v4()), 2),
        Event::NumbersScreened(pb::NumbersScreened {
            screening_id: "job".into(),
            batch: 1,
            numbers: vec![pb::ScreenedNumber {
                phone: phone.into(),
                validity: validity as i32,
                version,
                ..Default::default()
            }],
        }),
    )
}

fn overridden(phone: &str, validity: pb::NumberValidity, version: u64) -> RecordedEvent {
    RecordedEvent::new(
        EventMeta::new("acme", Aggregate::Screening(uuid::Uuid::new_v4()), 1),
        Event::NumberValidityOverridden(pb::NumberValidityOverridden {
            phones: vec![phone.into()],
            validity: validity as i32,
            versions: vec![version],
            ..Default::default()
        }),
    )
}

async fn invalid(db: &Db, phone: &str) -> Option<bool> {
    sqlx::query_scalar("SELECT invalid FROM dialer_invalid_numbers WHERE phone = $1")
        .bind(phone)
        .fetch_optional(&db.pool)
        .await
        .expect("read")
}

#[tokio::test]
async fn the_latest_validity_change_wins_whatever_order_the_events_arrive_in() {
    let env = TestEnv::new().await;
    let pool = common::dialer_pool(&env).await;
    let db = Db::new(pool);
    use pb::NumberValidity::*;
    let (x, y) = ("+8613800000001", "+8613800000002");

    // In order: screened invalid (5), then marked valid (9): dialed.
    db.apply_screening_events(&[&screened(x, Invalid, 5)])
        .await
        .expect("apply");
    assert_eq!(invalid(&db, x).await, Some(true));
    db.apply_screening_events(&[&overridden(x, Valid, 9)])
        .await
        .expect("apply");
    assert_eq!(invalid(&db, x).await, Some(false));
    // The override (9) overtaken by an older screening (5) arriving late: still valid.
    db.apply_screening_events(&[&overridden(y, Valid, 9), &screened(y, Invalid, 5)])
        .await
        .expect("apply");
    assert_eq!(invalid(&db, y).await, Some(false));
    // A newer screening (12) does mark it invalid again; an unknown result changes nothing.
    db.apply_screening_events(&[&screened(y, Invalid, 12), &screened(y, Unknown, 0)])
        .await
        .expect("apply");
    assert_eq!(invalid(&db, y).await, Some(true));
    // An override to unknown clears it; redelivered old events change nothing.
    db.apply_screening_events(&[&overridden(y, Unknown, 14), &screened(y, Invalid, 12)])
        .await
        .expect("apply");
    assert_eq!(invalid(&db, y).await, Some(false));
    // Phones and versions that do not pair up are refused, not half-applied.
    let mut bad = overridden(x, Invalid, 20);
    if let Event::NumberValidityOverridden(o) = &mut bad.event {
        o.versions.clear();
    }
    assert!(db.apply_screening_events(&[&bad]).await.is_err());
    assert_eq!(invalid(&db, x).await, Some(false));
    db.pool.close().await;
    env.cleanup().await;
}
