//! The recall rules as a pure function: what a released call means for its contact.

use waihu_events::{
    hangup::{classify, CauseClass},
    pb::ContactOutcome,
};

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
