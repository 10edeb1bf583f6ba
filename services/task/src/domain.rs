//! The task aggregate as pure functions: `decide(state, command) -> event` and the resulting state.

use waihu_events::{pb, Event};

/// Task lifecycle states (the seeds' 待添加/待呼叫, 进行中, 已暂停, 已完成, plus cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Running,
    Paused,
    Completed,
    Cancelled,
}

impl Status {
    pub fn to_pb(self) -> pb::TaskStatus {
        match self {
            Status::Pending => pb::TaskStatus::Pending,
            Status::Running => pb::TaskStatus::Running,
            Status::Paused => pb::TaskStatus::Paused,
            Status::Completed => pb::TaskStatus::Completed,
            Status::Cancelled => pb::TaskStatus::Cancelled,
        }
    }

    pub fn code(self) -> i16 {
        self.to_pb() as i16
    }

    pub fn from_code(code: i16) -> Option<Status> {
        match pb::TaskStatus::try_from(code as i32).ok()? {
            pb::TaskStatus::Pending => Some(Status::Pending),
            pb::TaskStatus::Running => Some(Status::Running),
            pb::TaskStatus::Paused => Some(Status::Paused),
            pb::TaskStatus::Completed => Some(Status::Completed),
            pb::TaskStatus::Cancelled => Some(Status::Cancelled),
            pb::TaskStatus::Unspecified => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Running => "RUNNING",
            Status::Paused => "PAUSED",
            Status::Completed => "COMPLETED",
            Status::Cancelled => "CANCELLED",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Cancelled)
    }
}

/// What the aggregate needs to decide.
#[derive(Debug, Clone, Copy)]
pub struct TaskState {
    pub status: Status,
    pub contacts_total: u32,
    pub contacts_finished: u32,
}

#[derive(Debug, Clone)]
pub enum Command {
    Start,
    Pause,
    /// A pause by the platform (an entitlement closed), with the reason.
    Suspend {
        reason: String,
    },
    Resume,
    Cancel {
        reason: String,
    },
    /// Issued by the task itself when its last contact finishes.
    Complete,
}

impl Command {
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Start => "started",
            Command::Pause | Command::Suspend { .. } => "paused",
            Command::Resume => "resumed",
            Command::Cancel { .. } => "cancelled",
            Command::Complete => "completed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("task is {}; it cannot be {verb}", .status.name())]
    IllegalTransition { status: Status, verb: &'static str },
    #[error("task has no contacts; add contacts before starting it")]
    NoContacts,
}

/// Decides what a command does to a task: the new status and the event announcing it.
pub fn decide(
    state: TaskState,
    task_id: &str,
    command: &Command,
) -> Result<(Status, Event), Rejection> {
    use Status::*;
    let illegal = || Rejection::IllegalTransition {
        status: state.status,
        verb: command.verb(),
    };
    let id = task_id.to_string();
    match (state.status, command) {
        (Pending, Command::Start) if state.contacts_total == 0 => Err(Rejection::NoContacts),
        (Pending, Command::Start) => {
            Ok((Running, Event::TaskStarted(pb::TaskStarted { task_id: id })))
        }
        (Running, Command::Pause) => Ok((
            Paused,
            Event::TaskPaused(pb::TaskPaused {
                task_id: id,
                reason: String::new(),
            }),
        )),
        (Running, Command::Suspend { reason }) => Ok((
            Paused,
            Event::TaskPaused(pb::TaskPaused {
                task_id: id,
                reason: reason.clone(),
            }),
        )),
        (Paused, Command::Resume) => {
            Ok((Running, Event::TaskResumed(pb::TaskResumed { task_id: id })))
        }
        (Pending | Running | Paused, Command::Cancel { reason }) => Ok((
            Cancelled,
            Event::TaskCancelled(pb::TaskCancelled {
                task_id: id,
                reason: reason.clone(),
            }),
        )),
        (Running, Command::Complete) if state.contacts_finished >= state.contacts_total => Ok((
            Completed,
            Event::TaskCompleted(pb::TaskCompleted {
                task_id: id,
                contacts_total: state.contacts_total,
            }),
        )),
        _ => Err(illegal()),
    }
}

/// Whether contacts may be added in this state.
pub fn accepts_contacts(status: Status) -> bool {
    matches!(status, Status::Pending | Status::Running | Status::Paused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: Status) -> TaskState {
        TaskState {
            status,
            contacts_total: 10,
            contacts_finished: 0,
        }
    }

    #[test]
    fn start_pause_resume_cancel_follow_the_lifecycle() {
        let (s, e) = decide(state(Status::Pending), "t", &Command::Start).expect("start");
        assert_eq!((s, e.type_name()), (Status::Running, "TaskStarted"));
        let (s, _) = decide(state(Status::Running), "t", &Command::Pause).expect("pause");
        assert_eq!(s, Status::Paused);
        let (s, _) = decide(state(Status::Paused), "t", &Command::Resume).expect("resume");
        assert_eq!(s, Status::Running);
        let (s, _) = decide(
            state(Status::Paused),
            "t",
            &Command::Cancel { reason: "x".into() },
        )
        .expect("cancel");
        assert_eq!(s, Status::Cancelled);
    }

    #[test]
    fn final_states_refuse_everything_naming_the_state() {
        for st in [Status::Completed, Status::Cancelled] {
            for cmd in [
                Command::Start,
                Command::Pause,
                Command::Resume,
                Command::Cancel {
                    reason: String::new(),
                },
            ] {
                let err = decide(state(st), "t", &cmd).expect_err("illegal");
                assert!(err.to_string().contains(st.name()), "{err}");
            }
        }
        assert_eq!(
            decide(state(Status::Running), "t", &Command::Start)
                .expect_err("twice")
                .to_string(),
            "task is RUNNING; it cannot be started"
        );
    }

    #[test]
    fn start_needs_contacts_and_complete_needs_all_finished() {
        let empty = TaskState {
            status: Status::Pending,
            contacts_total: 0,
            contacts_finished: 0,
        };
        assert_eq!(
            decide(empty, "t", &Command::Start).expect_err("empty"),
            Rejection::NoContacts
        );
        let half = TaskState {
            status: Status::Running,
            contacts_total: 10,
            contacts_finished: 5,
        };
        assert!(decide(half, "t", &Command::Complete).is_err());
        let all = TaskState {
            status: Status::Running,
            contacts_total: 10,
            contacts_finished: 10,
        };
        assert_eq!(
            decide(all, "t", &Command::Complete).expect("complete").0,
            Status::Completed
        );
    }
}
