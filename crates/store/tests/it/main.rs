//! The store crate's integration tests, one binary against real components (DESIGN.md, "Real
//! components in tests").

mod audit_verify;
mod bus;
mod database;
mod db_audit;
mod db_queue;
mod db_schema;
mod objects;
mod outbox_rows;
mod secrets_at_rest;
mod support;
mod telegram_state;
