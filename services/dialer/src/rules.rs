//! The recall rules as a pure function: what a released call means for its contact.

use waihu_events::pb::ContactOutcome;

/// What a released call means for the contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseClass {
    /// The callee answered: the contact is done.
    Answered,
    /// Busy, no answer, temporary failure: worth another attempt after the recall interval.
    Retry,
    /// The callee refused the call: not called again.
    Rejected,
    /// Unallocated or malformed number: never called again, the number is marked invalid.
    InvalidNumber,
    /// A failure that another attempt will not cure (incompatible destination, interworking).
    Final,
}

/// Classifies a release for the recall rules.
pub fn classify(q850: u32, answered: bool) -> CauseClass {
    if answered {
        return CauseClass::Answered;
    }
    match q850 {
        1 | 3 | 22 | 28 => CauseClass::InvalidNumber,
        21 => CauseClass::Rejected,
        79 | 88 | 127 => CauseClass::Final,
        _ => CauseClass::Retry,
    }
}

/// What happens to a contact after a call to it is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Call again after the task's recall interval.
    Recall,
    Finish(ContactOutcome),
}

/// `attempts` counts calls placed so far (this one included); a task allows `recall_count`
/// calls after the first.
pub fn after_release(
    q850: u32,
    answered: bool,
    attempts: u32,
    recall_count: u32,
    cancelled: bool,
) -> Next {
    match classify(q850, answered) {
        CauseClass::Answered => Next::Finish(ContactOutcome::Answered),
        CauseClass::InvalidNumber => Next::Finish(ContactOutcome::InvalidNumber),
        CauseClass::Rejected => Next::Finish(ContactOutcome::Rejected),
        CauseClass::Final => Next::Finish(ContactOutcome::Unreached),
        CauseClass::Retry if cancelled => Next::Finish(ContactOutcome::Cancelled),
        CauseClass::Retry if attempts <= recall_count => Next::Recall,
        CauseClass::Retry => Next::Finish(ContactOutcome::Unreached),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_classes_follow_the_rules() {
        assert_eq!(classify(16, true), CauseClass::Answered);
        for busy_or_unanswered in [17, 18, 19, 41, 487] {
            assert_eq!(classify(busy_or_unanswered, false), CauseClass::Retry);
        }
        assert_eq!(classify(1, false), CauseClass::InvalidNumber);
        assert_eq!(classify(28, false), CauseClass::InvalidNumber);
        assert_eq!(classify(21, false), CauseClass::Rejected);
    }

    #[test]
    fn busy_contact_is_recalled_until_the_recall_count_is_spent() {
        assert_eq!(after_release(17, false, 1, 2, false), Next::Recall);
        assert_eq!(after_release(17, false, 2, 2, false), Next::Recall);
        assert_eq!(
            after_release(17, false, 3, 2, false),
            Next::Finish(ContactOutcome::Unreached)
        );
        assert_eq!(
            after_release(19, false, 1, 0, false),
            Next::Finish(ContactOutcome::Unreached)
        );
    }

    #[test]
    fn unallocated_and_invalid_numbers_are_never_recalled() {
        for q in [1, 28] {
            assert_eq!(
                after_release(q, false, 1, 5, false),
                Next::Finish(ContactOutcome::InvalidNumber)
            );
        }
    }

    #[test]
    fn answered_rejected_and_cancelled_finish() {
        assert_eq!(
            after_release(16, true, 1, 5, false),
            Next::Finish(ContactOutcome::Answered)
        );
        assert_eq!(
            after_release(21, false, 1, 5, false),
            Next::Finish(ContactOutcome::Rejected)
        );
        assert_eq!(
            after_release(17, false, 1, 5, true),
            Next::Finish(ContactOutcome::Cancelled)
        );
        // An answered call counts as answered even if the task was cancelled meanwhile.
        assert_eq!(
            after_release(16, true, 1, 5, true),
            Next::Finish(ContactOutcome::Answered)
        );
    }
}
