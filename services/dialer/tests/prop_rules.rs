//! Property tests for the recall rules (`waihu_dialer::rules::after_release`).

use proptest::prelude::*;
use waihu_dialer::rules::{after_release, Next, RetryPolicy, RETRYABLE};
use waihu_dialer::rules::{classify, CauseClass};
use waihu_events::pb::ContactOutcome;
use waihu_telephony::hangup::{Q850_NAMES, SIP_TO_Q850};

/// Default case count (overridable with PROPTEST_CASES); no regression files are written.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Every Q.850 value the tables know, plus values around them.
fn known_q850() -> Vec<u32> {
    let mut v: Vec<u32> = Q850_NAMES
        .iter()
        .map(|(c, _)| *c)
        .chain(SIP_TO_Q850.iter().map(|(_, q)| *q))
        .chain(0..=130)
        .chain([486, 487, 488, 600, 603])
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Q.850 values: mostly ones the tables know, sometimes anything.
fn q850() -> BoxedStrategy<u32> {
    prop_oneof![
        3 => prop::sample::select(known_q850()),
        1 => any::<u32>(),
    ]
    .boxed()
}

/// Causes `classify` puts in `class` when the call was not answered.
fn q850_of(class: CauseClass) -> BoxedStrategy<u32> {
    let known: Vec<u32> = known_q850()
        .into_iter()
        .filter(|q| classify(*q, false) == class)
        .collect();
    prop::sample::select(known).boxed()
}

/// A retryable cause (busy, no answer, temporary failure, timer expiry, ...).
fn retry_q850() -> BoxedStrategy<u32> {
    prop::sample::select(RETRYABLE.to_vec()).boxed()
}

/// The policy of a task with only a recall count (every retryable cause the same).
fn policy(recall_count: u32) -> RetryPolicy {
    RetryPolicy {
        tries: recall_count,
        ..Default::default()
    }
}

fn recall_count() -> BoxedStrategy<u32> {
    prop_oneof![
        3 => 0u32..=10,
        1 => any::<u32>(),
        1 => Just(u32::MAX),
    ]
    .boxed()
}

/// `(attempts, recall_count)` with attempts <= recall_count (so recall_count >= 1).
fn attempts_within_allowance() -> BoxedStrategy<(u32, u32)> {
    recall_count()
        .prop_filter("some recall allowed", |r| *r >= 1)
        .prop_flat_map(|r| (1..=r, Just(r)))
        .boxed()
}

/// `(attempts, recall_count)` with attempts > recall_count: the allowance is spent.
fn attempts_beyond_allowance() -> BoxedStrategy<(u32, u32)> {
    recall_count()
        .prop_filter("room for one more attempt", |r| *r < u32::MAX)
        .prop_flat_map(|r| (r + 1..=u32::MAX, Just(r)))
        .boxed()
}

/// One call's release: its cause and whether it was answered.
fn release() -> BoxedStrategy<(u32, bool)> {
    prop_oneof![
        4 => (retry_q850(), Just(false)),
        1 => (q850(), any::<bool>()),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn an_answered_call_classifies_as_answered_and_only_it_does(
        q850 in any::<u32>(),
        answered in any::<bool>(),
    ) {
        prop_assert_eq!(classify(q850, answered) == CauseClass::Answered, answered);
    }


    #[test]
    fn an_answered_call_always_finishes_as_answered(
        q850 in q850(),
        attempts in any::<u32>(),
        recall_count in recall_count(),
        cancelled in any::<bool>(),
    ) {
        prop_assert_eq!(
            after_release(q850, true, attempts, &policy(recall_count), cancelled),
            Next::Finish(ContactOutcome::Answered)
        );
    }

    #[test]
    fn only_an_answered_call_finishes_as_answered(
        q850 in q850(),
        attempts in any::<u32>(),
        recall_count in recall_count(),
        cancelled in any::<bool>(),
    ) {
        prop_assert_ne!(
            after_release(q850, false, attempts, &policy(recall_count), cancelled),
            Next::Finish(ContactOutcome::Answered)
        );
    }

    #[test]
    fn a_contact_is_never_recalled_once_its_recalls_are_spent(
        q850 in q850(),
        answered in any::<bool>(),
        (attempts, recall_count) in attempts_beyond_allowance(),
        cancelled in any::<bool>(),
    ) {
        prop_assert!(!matches!(
            after_release(q850, answered, attempts, &policy(recall_count), cancelled),
            Next::Recall(_)
        ));
    }

    #[test]
    fn an_unallocated_or_invalid_number_is_never_recalled(
        q850 in prop_oneof![Just(1u32), Just(28u32), q850_of(CauseClass::InvalidNumber)],
        attempts in any::<u32>(),
        recall_count in recall_count(),
        cancelled in any::<bool>(),
    ) {
        prop_assert_eq!(
            after_release(q850, false, attempts, &policy(recall_count), cancelled),
            Next::Finish(ContactOutcome::InvalidNumber)
        );
    }

    #[test]
    fn a_rejected_or_final_failure_is_never_recalled(
        q850 in prop_oneof![q850_of(CauseClass::Rejected), q850_of(CauseClass::Final)],
        attempts in any::<u32>(),
        recall_count in recall_count(),
        cancelled in any::<bool>(),
    ) {
        let expected = match classify(q850, false) {
            CauseClass::Rejected => ContactOutcome::Rejected,
            _ => ContactOutcome::Unreached,
        };
        prop_assert_eq!(
            after_release(q850, false, attempts, &policy(recall_count), cancelled),
            Next::Finish(expected)
        );
    }

    #[test]
    fn a_retryable_failure_with_recalls_left_is_recalled(
        q850 in retry_q850(),
        (attempts, recall_count) in attempts_within_allowance(),
    ) {
        prop_assert!(matches!(
            after_release(q850, false, attempts, &policy(recall_count), false),
            Next::Recall(_)
        ));
    }

    #[test]
    fn a_retryable_failure_of_a_cancelled_task_finishes_as_cancelled(
        q850 in retry_q850(),
        attempts in any::<u32>(),
        recall_count in recall_count(),
    ) {
        prop_assert_eq!(
            after_release(q850, false, attempts, &policy(recall_count), true),
            Next::Finish(ContactOutcome::Cancelled)
        );
    }

    #[test]
    fn a_cancelled_task_never_recalls(
        q850 in q850(),
        answered in any::<bool>(),
        attempts in any::<u32>(),
        recall_count in recall_count(),
    ) {
        prop_assert!(!matches!(
            after_release(q850, answered, attempts, &policy(recall_count), true),
            Next::Recall(_)
        ));
    }

    #[test]
    fn a_retryable_failure_with_recalls_spent_finishes_unreached(
        q850 in retry_q850(),
        (attempts, recall_count) in attempts_beyond_allowance(),
    ) {
        prop_assert_eq!(
            after_release(q850, false, attempts, &policy(recall_count), false),
            Next::Finish(ContactOutcome::Unreached)
        );
    }

    /// A whole contact: calls are placed one after another, each release fed to the rules with
    /// the attempt count so far, until the rules finish the contact.
    #[test]
    fn a_contact_gets_at_most_recall_count_plus_one_calls_and_always_finishes(
        recall_count in 0u32..=8,
        releases in prop::collection::vec(release(), 1..=12),
        cancel_at in proptest::option::of(1usize..=12),
    ) {
        let mut attempts = 0u32;
        let mut outcome = None;
        for (i, (q850, answered)) in releases.iter().copied().enumerate() {
            attempts += 1;
            let cancelled = cancel_at.is_some_and(|c| i + 1 >= c);
            prop_assert!(attempts <= recall_count + 1, "call {} placed with recall_count {}", attempts, recall_count);
            match after_release(q850, answered, attempts, &policy(recall_count), cancelled) {
                Next::Recall(_) => {
                    prop_assert!(!answered && !cancelled);
                    prop_assert_eq!(classify(q850, answered), CauseClass::Retry);
                }
                Next::Finish(o) => {
                    outcome = Some(o);
                    break;
                }
            }
        }
        prop_assert!(attempts <= recall_count + 1);
        match outcome {
            Some(o) => {
                prop_assert_ne!(o, ContactOutcome::Unspecified);
                // Answered ends the contact only on an answered call; Unreached on a retryable
                // failure only once every allowed call was placed.
                let (q850, answered) = releases[attempts as usize - 1];
                if o == ContactOutcome::Answered {
                    prop_assert!(answered);
                }
                if o == ContactOutcome::Unreached && classify(q850, answered) == CauseClass::Retry {
                    prop_assert_eq!(attempts, recall_count + 1);
                }
            }
            // Not finished yet: only because the simulation ran out of releases, each one recalled.
            None => {
                prop_assert_eq!(attempts as usize, releases.len());
                prop_assert!(attempts <= recall_count);
            }
        }
    }

    /// With only retryable failures and no cancellation the contact is called exactly
    /// recall_count + 1 times and ends unreached.
    #[test]
    fn an_always_busy_contact_is_called_exactly_recall_count_plus_one_times(
        recall_count in 0u32..=50,
        q850s in prop::collection::vec(retry_q850(), 51),
    ) {
        let mut attempts = 0u32;
        let outcome = loop {
            // Another call may be placed only while calls so far <= recall_count.
            prop_assert!(attempts <= recall_count, "call {} placed", attempts + 1);
            let q850 = q850s[attempts as usize];
            attempts += 1;
            if let Next::Finish(o) = after_release(q850, false, attempts, &policy(recall_count), false) {
                break o;
            }
        };
        prop_assert_eq!(outcome, ContactOutcome::Unreached);
        prop_assert_eq!(attempts, recall_count + 1);
    }
}
