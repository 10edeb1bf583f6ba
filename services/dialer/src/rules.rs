//! The recall rules as a pure function: what a released call means for its contact.
//!
//! Only retryable causes are called again: busy 17, no user response 18, no answer 19,
//! subscriber absent 20, congestion and temporary failures 34/38/41/42/44/47 and timer expiry
//! 102 (our own watchdog). Unallocated 1, no route 3, number changed 22, invalid format 28 and
//! barred 52/54/55 mark the number invalid. CALL_REJECTED 21 is final unless the task's policy
//! retries it. Every other cause is final. A task's policy may give some causes their own tries
//! and interval (busy: 3 tries every 10 minutes; no answer: 2 tries every 2 hours).

use std::time::Duration;

use waihu_events::pb::{self, ContactOutcome};

pub use waihu_telephony::hangup::{
    CALL_REJECTED as REJECTED, INVALID_NUMBER_Q850 as INVALID_NUMBER, RETRYABLE_Q850 as RETRYABLE,
};

/// What a released call means for the contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseClass {
    /// The callee answered: the contact is done.
    Answered,
    /// Busy, no answer, temporary failure: worth another attempt.
    Retry,
    /// The callee refused the call: not called again unless the policy says so.
    Rejected,
    /// Unallocated, malformed or barred number: never called again, the number is invalid.
    InvalidNumber,
    /// A failure another attempt will not cure.
    Final,
}

/// Classifies a release for the recall rules.
pub fn classify(q850: u32, answered: bool) -> CauseClass {
    if answered {
        CauseClass::Answered
    } else if RETRYABLE.contains(&q850) {
        CauseClass::Retry
    } else if INVALID_NUMBER.contains(&q850) {
        CauseClass::InvalidNumber
    } else if q850 == REJECTED {
        CauseClass::Rejected
    } else {
        CauseClass::Final
    }
}

/// A task's recall rules: its default tries and interval, and per-cause overrides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetryPolicy {
    /// Calls after the first, for a retryable cause without a rule (`recall_count`).
    pub tries: u32,
    /// Between a release and the next call (`recall_interval_seconds`).
    pub interval: Duration,
    /// (causes, tries, interval) overrides, first match wins.
    pub rules: Vec<(Vec<u32>, u32, Duration)>,
    /// CALL_REJECTED 21 is retried like a retryable cause.
    pub retry_rejected: bool,
}

impl RetryPolicy {
    /// The policy of a task spec's `recall_count`, `recall_interval_seconds` and `retry`.
    pub fn new(tries: u32, interval_seconds: u32, retry: Option<&pb::RetryPolicy>) -> Self {
        let mut p = RetryPolicy {
            tries,
            interval: Duration::from_secs(interval_seconds.into()),
            ..Default::default()
        };
        if let Some(r) = retry {
            p.retry_rejected = r.retry_rejected;
            p.rules = r
                .rules
                .iter()
                .map(|rule| {
                    (
                        rule.causes.clone(),
                        rule.tries,
                        Duration::from_secs(rule.interval_seconds.into()),
                    )
                })
                .collect();
        }
        p
    }

    /// The tries and interval for a retryable `q850`.
    pub fn for_cause(&self, q850: u32) -> (u32, Duration) {
        self.rules
            .iter()
            .find(|(causes, _, _)| causes.contains(&q850))
            .map_or((self.tries, self.interval), |(_, t, i)| (*t, *i))
    }
}

/// What happens to a contact after a call to it is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Call again after this long.
    Recall(Duration),
    Finish(ContactOutcome),
}

/// `attempts` counts calls placed so far (this one included); the policy allows, for the
/// cause of this release, that many calls after the first.
pub fn after_release(
    q850: u32,
    answered: bool,
    attempts: u32,
    policy: &RetryPolicy,
    cancelled: bool,
) -> Next {
    let class = match classify(q850, answered) {
        CauseClass::Rejected if policy.retry_rejected => CauseClass::Retry,
        c => c,
    };
    match class {
        CauseClass::Answered => Next::Finish(ContactOutcome::Answered),
        CauseClass::InvalidNumber => Next::Finish(ContactOutcome::InvalidNumber),
        CauseClass::Rejected => Next::Finish(ContactOutcome::Rejected),
        CauseClass::Final => Next::Finish(ContactOutcome::Unreached),
        CauseClass::Retry if cancelled => Next::Finish(ContactOutcome::Cancelled),
        CauseClass::Retry => {
            let (tries, interval) = policy.for_cause(q850);
            if attempts <= tries {
                Next::Recall(interval)
            } else if q850 == REJECTED {
                Next::Finish(ContactOutcome::Rejected)
            } else {
                Next::Finish(ContactOutcome::Unreached)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(tries: u32) -> RetryPolicy {
        RetryPolicy {
            tries,
            interval: Duration::from_secs(60),
            ..Default::default()
        }
    }

    #[test]
    fn recall_classes_follow_the_rules() {
        assert_eq!(classify(16, true), CauseClass::Answered);
        for retry in [17, 18, 19, 20, 34, 38, 41, 42, 44, 47, 102] {
            assert_eq!(classify(retry, false), CauseClass::Retry, "{retry}");
        }
        for invalid in [1, 3, 22, 28, 52, 54, 55] {
            assert_eq!(
                classify(invalid, false),
                CauseClass::InvalidNumber,
                "{invalid}"
            );
        }
        assert_eq!(classify(21, false), CauseClass::Rejected);
        for fin in [16, 31, 79, 88, 127, 487] {
            assert_eq!(classify(fin, false), CauseClass::Final, "{fin}");
        }
    }

    #[test]
    fn busy_contact_is_recalled_until_the_recall_count_is_spent() {
        let p = policy(2);
        let again = Next::Recall(Duration::from_secs(60));
        assert_eq!(after_release(17, false, 1, &p, false), again);
        assert_eq!(after_release(17, false, 2, &p, false), again);
        assert_eq!(
            after_release(17, false, 3, &p, false),
            Next::Finish(ContactOutcome::Unreached)
        );
        assert_eq!(
            after_release(19, false, 1, &policy(0), false),
            Next::Finish(ContactOutcome::Unreached)
        );
    }

    #[test]
    fn causes_may_have_their_own_tries_and_interval() {
        // Busy: 3 tries every 10 minutes; no answer: 2 tries every 2 hours; the rest 1 try.
        let p = RetryPolicy::new(
            1,
            300,
            Some(&pb::RetryPolicy {
                rules: vec![
                    pb::RetryRule {
                        causes: vec![17],
                        tries: 3,
                        interval_seconds: 600,
                    },
                    pb::RetryRule {
                        causes: vec![18, 19],
                        tries: 2,
                        interval_seconds: 7200,
                    },
                ],
                retry_rejected: false,
            }),
        );
        assert_eq!(
            after_release(17, false, 3, &p, false),
            Next::Recall(Duration::from_secs(600))
        );
        assert_eq!(
            after_release(17, false, 4, &p, false),
            Next::Finish(ContactOutcome::Unreached)
        );
        assert_eq!(
            after_release(19, false, 2, &p, false),
            Next::Recall(Duration::from_secs(7200))
        );
        assert_eq!(
            after_release(41, false, 1, &p, false),
            Next::Recall(Duration::from_secs(300))
        );
        assert_eq!(
            after_release(41, false, 2, &p, false),
            Next::Finish(ContactOutcome::Unreached)
        );
    }

    #[test]
    fn rejected_is_final_unless_the_policy_retries_it() {
        let mut p = policy(2);
        assert_eq!(
            after_release(21, false, 1, &p, false),
            Next::Finish(ContactOutcome::Rejected)
        );
        p.retry_rejected = true;
        assert_eq!(
            after_release(21, false, 1, &p, false),
            Next::Recall(Duration::from_secs(60))
        );
        assert_eq!(
            after_release(21, false, 3, &p, false),
            Next::Finish(ContactOutcome::Rejected)
        );
    }

    #[test]
    fn unallocated_invalid_and_barred_numbers_are_never_recalled() {
        for q in [1, 3, 22, 28, 52, 54] {
            assert_eq!(
                after_release(q, false, 1, &policy(5), false),
                Next::Finish(ContactOutcome::InvalidNumber)
            );
        }
    }

    #[test]
    fn answered_rejected_and_cancelled_finish() {
        let p = policy(5);
        assert_eq!(
            after_release(16, true, 1, &p, false),
            Next::Finish(ContactOutcome::Answered)
        );
        assert_eq!(
            after_release(17, false, 1, &p, true),
            Next::Finish(ContactOutcome::Cancelled)
        );
        // An answered call counts as answered even if the task was cancelled meanwhile.
        assert_eq!(
            after_release(16, true, 1, &p, true),
            Next::Finish(ContactOutcome::Answered)
        );
    }

    fn any_policy() -> impl Strategy<Value = RetryPolicy> {
        let rule = (
            proptest::collection::vec(prop::sample::select(RETRYABLE.to_vec()), 1..4),
            0u32..6,
            0u64..100_000,
        )
            .prop_map(|(c, t, i)| (c, t, Duration::from_secs(i)));
        (
            0u32..6,
            0u64..100_000,
            proptest::collection::vec(rule, 0..4),
            any::<bool>(),
        )
            .prop_map(|(tries, i, rules, retry_rejected)| RetryPolicy {
                tries,
                interval: Duration::from_secs(i),
                rules,
                retry_rejected,
            })
    }

    proptest! {
        /// A contact that keeps getting one cause is called exactly 1 + that cause's tries
        /// times when the cause is retryable, once otherwise, each recall after that cause's
        /// interval.
        #[test]
        fn a_cause_repeated_gets_exactly_its_tries(
            p in any_policy(),
            q850 in prop_oneof![prop::sample::select(RETRYABLE.to_vec()), 0u32..128],
        ) {
            let retryable = RETRYABLE.contains(&q850) || (q850 == REJECTED && p.retry_rejected);
            let (tries, interval) = p.for_cause(q850);
            let mut calls = 0u32;
            loop {
                calls += 1;
                prop_assert!(calls <= 7, "never more than 1 + 5 calls");
                match after_release(q850, false, calls, &p, false) {
                    Next::Recall(wait) => {
                        prop_assert!(retryable);
                        prop_assert_eq!(wait, interval);
                    }
                    Next::Finish(o) => {
                        prop_assert_ne!(o, ContactOutcome::Answered);
                        break;
                    }
                }
            }
            prop_assert_eq!(calls, if retryable { tries + 1 } else { 1 });
        }

        /// Whatever the policy, an answer finishes the contact, a cancelled task recalls nobody,
        /// and an invalid number is never called again.
        #[test]
        fn answers_cancels_and_invalid_numbers_always_finish(
            p in any_policy(), q850 in 0u32..128, attempts in 1u32..8,
        ) {
            prop_assert_eq!(
                after_release(q850, true, attempts, &p, false),
                Next::Finish(ContactOutcome::Answered)
            );
            prop_assert!(!matches!(after_release(q850, false, attempts, &p, true), Next::Recall(_)));
            if INVALID_NUMBER.contains(&q850) {
                prop_assert_eq!(
                    after_release(q850, false, attempts, &p, false),
                    Next::Finish(ContactOutcome::InvalidNumber)
                );
            }
        }
    }
}
