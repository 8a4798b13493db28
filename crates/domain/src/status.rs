//! `TaskStatus` and its state machine (CONTRACT.md "TaskStatus transitions").
//!
//! The only way to change a task's status anywhere in the system is [`TaskStatus::transition`], so
//! an illegal move is a typed error at the one place that decides it.

use crate::enums::wire_enum;

wire_enum! {
    /// Where a task is in its life.
    TaskStatus {
        Queued = "QUEUED",
        Running = "RUNNING",
        WaitingApproval = "WAITING_APPROVAL",
        Succeeded = "SUCCEEDED",
        Failed = "FAILED",
        Canceled = "CANCELED",
        TimedOut = "TIMED_OUT",
    }
}

/// A status change the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a task cannot go from {from} to {to}")]
pub struct TransitionError {
    /// The status the task has.
    pub from: TaskStatus,
    /// The status that was asked for.
    pub to: TaskStatus,
}

impl TaskStatus {
    /// True for SUCCEEDED, FAILED, CANCELED and TIMED_OUT: final states.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded
                | TaskStatus::Failed
                | TaskStatus::Canceled
                | TaskStatus::TimedOut
        )
    }

    /// Whether the contract allows moving from `self` to `to`.
    pub fn can_become(self, to: TaskStatus) -> bool {
        use TaskStatus::*;
        match self {
            Queued => matches!(to, Running | WaitingApproval | Failed | Canceled),
            Running => matches!(
                to,
                WaitingApproval | Queued | Succeeded | Failed | Canceled | TimedOut
            ),
            WaitingApproval => matches!(to, Queued | Failed | Canceled),
            Succeeded | Failed | Canceled | TimedOut => false,
        }
    }

    /// The status after moving to `to`, or why that move is illegal.
    pub fn transition(self, to: TaskStatus) -> Result<TaskStatus, TransitionError> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }

    /// The statuses from which a move to `to` is legal; used to guard database updates so a
    /// concurrent change can never produce an illegal transition.
    pub fn legal_sources(to: TaskStatus) -> Vec<TaskStatus> {
        TaskStatus::ALL
            .iter()
            .copied()
            .filter(|from| from.can_become(to))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::TaskStatus::{self, *};
    use proptest::prelude::*;

    #[test]
    fn contract_edges_are_allowed() {
        let edges = [
            (Queued, Running),
            (Queued, WaitingApproval),
            (Queued, Failed),
            (Queued, Canceled),
            (Running, WaitingApproval),
            (Running, Queued),
            (Running, Succeeded),
            (Running, Failed),
            (Running, Canceled),
            (Running, TimedOut),
            (WaitingApproval, Queued),
            (WaitingApproval, Failed),
            (WaitingApproval, Canceled),
        ];
        let mut allowed = 0;
        for from in TaskStatus::ALL {
            for to in TaskStatus::ALL {
                let expected = edges.contains(&(*from, *to));
                assert_eq!(from.can_become(*to), expected, "{from} -> {to}");
                allowed += usize::from(expected);
            }
        }
        assert_eq!(allowed, edges.len());
    }

    #[test]
    fn illegal_transition_is_a_typed_error() {
        let err = Succeeded.transition(Running).unwrap_err();
        assert_eq!(err.from, Succeeded);
        assert_eq!(err.to, Running);
        assert_eq!(
            err.to_string(),
            "a task cannot go from SUCCEEDED to RUNNING"
        );
        assert!(Queued.transition(TimedOut).is_err());
        assert!(WaitingApproval.transition(Succeeded).is_err());
    }

    fn any_status() -> impl Strategy<Value = TaskStatus> {
        proptest::sample::select(TaskStatus::ALL.to_vec())
    }

    proptest! {
        /// Walking random requested transitions: the status only changes along legal edges, a
        /// terminal status never changes again, and every refusal is reported.
        #[test]
        fn random_sequences_follow_the_machine(steps in proptest::collection::vec(any_status(), 0..64)) {
            let mut current = Queued;
            let mut reached_terminal = false;
            for to in steps {
                match current.transition(to) {
                    Ok(next) => {
                        prop_assert!(!reached_terminal, "left a terminal state");
                        prop_assert!(current.can_become(next));
                        current = next;
                        reached_terminal = current.is_terminal();
                    }
                    Err(e) => {
                        prop_assert_eq!(e.from, current);
                        prop_assert_eq!(e.to, to);
                        prop_assert!(!current.can_become(to));
                    }
                }
            }
        }

        #[test]
        fn legal_sources_agree_with_can_become(from in any_status(), to in any_status()) {
            prop_assert_eq!(TaskStatus::legal_sources(to).contains(&from), from.can_become(to));
        }
    }
}
