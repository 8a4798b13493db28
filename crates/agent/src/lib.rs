//! The hands of AgenticAI: the execution manager.
//!
//! Workers claim QUEUED tasks from the database (a lease that expires, so a dead worker's task is
//! found again), check that what is about to run is exactly what was decided — an Allow at
//! creation, or an approval bound to the hash of this action, environment and grants — run it in
//! a fresh sandbox, stream its output as task events, and record the result. Cancellation,
//! timeouts, retries and crash recovery follow one contract, written down in
//! `docs/reliability.md` and implemented in [`manager::recovery`].
//!
//! The agent loop ([`planner`]) runs agent tasks in the same workers: a model ([`llm`]) plans
//! with tools, and every action it proposes is decided by the same policy gate as a typed
//! command and run the same way.

pub mod llm;
pub mod manager;
pub mod planner;

pub use manager::{ExecutionManager, ManagerConfig};
