//! Integration tests of the `agenticai` binary: each scenario drives the real binary as a
//! subprocess (`serve` and the CLI commands) over its own data directory, port and database,
//! and checks the behaviour CONTRACT.md promises.
//!
//! SQLite by default; `AGENTICAI_TEST_DATABASE=postgres` runs every scenario on a database of its
//! own on the shared Postgres server (`AGENTICAI_TEST_POSTGRES_URL`). Tests named `postgres_*`
//! always use Postgres.

mod agent_loop;
mod api_auth;
mod api_bad_input;
mod api_tasks;
mod api_users;
mod audit_cli_api;
mod chat_cli;
mod cli_commands;
mod config_errors;
mod environments_secrets_api;
mod execution_commands;
mod execution_environments;
mod governance_api;
mod metrics_and_openapi;
mod postgres_down_while_running;
mod postgres_policy_across_processes;
mod postgres_restart;
mod reliability_crash_recovery;
mod reliability_restart;
mod support;
mod telegram_channel;
mod telegram_emulator;
