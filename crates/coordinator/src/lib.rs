//! The channel-agnostic front desk of AgenticAI.
//!
//! Identity and onboarding (org bootstrap, users, tokens, invites and link codes), and the task
//! operations people ask for (create, read, list, cancel). The HTTP API and the Telegram adapter
//! both call these functions, so each rule — who may see a task, who may create a user, what a
//! valid task looks like — has exactly one home.

mod approvals;
mod auth_failures;
mod environments;
mod error;
mod gate;
mod governance;
mod identity;
mod page;
mod secrets;
mod task_writer;
mod tasks;
mod telegram;
mod watch;

pub use environments::{
    EnvironmentSpec, is_environment_name, is_secret_name, normalize_egress, validate_environment,
};
pub use error::{CoordError, Result};
pub use governance::{Emergency, EmergencyOutcome};
pub use identity::{Actor, DEFAULT_CODE_TTL, MAX_CODE_TTL, OrgInit, UserPatch};
pub use page::Page;
pub use policy::gate::Explanation;
pub use secrets::MAX_SECRET_BYTES;
pub use tasks::{NewTask, TaskQuery};
pub use telegram::{AwaitingApproval, ChatStatus, Redeemed, TelegramAccount};
pub use watch::TaskWatch;

use store::Db;
use store::bus::Bus;

/// The front desk: cheap to clone, shared by every channel.
#[derive(Clone, Debug)]
pub struct Coordinator {
    db: Db,
    bus: Bus,
    auth_failures: std::sync::Arc<auth_failures::AuthFailures>,
    task_writer: task_writer::TaskWriter,
    /// The master key, for secrets (see [`Coordinator::with_keyring`]).
    keyring: Option<store::secrets::Keyring>,
    /// Tasks one user may create per hour (see [`Coordinator::with_task_quota`]).
    tasks_per_hour: Option<u32>,
}

impl Coordinator {
    /// A coordinator over the given database and bus. Starts its task writer on the current
    /// Tokio runtime, so call it from inside one.
    pub fn new(db: Db, bus: Bus) -> Coordinator {
        Coordinator {
            task_writer: task_writer::TaskWriter::start(db.clone()),
            db,
            bus,
            auth_failures: Default::default(),
            keyring: None,
            tasks_per_hour: None,
        }
    }

    /// Limits how many tasks one user may create per hour (`None`: no limit). Over the limit,
    /// creation fails with [`CoordError::QuotaExceeded`]. Under concurrent requests of one user
    /// the limit may be passed by the number of requests in flight.
    pub fn with_task_quota(mut self, tasks_per_hour: Option<u32>) -> Coordinator {
        self.tasks_per_hour = tasks_per_hour;
        self
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The event bus.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }
}
