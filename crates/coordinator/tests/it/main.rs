//! The coordinator's integration tests, against real SQLite/Postgres and Redis.

mod environments_secrets;
mod governance_bypass;
mod reliability_group_commit;
mod reliability_redis_down;
mod security_approvals;
mod security_visibility;
mod support;
mod telegram_identity;
