//! Integration tests of the execution manager against a real database (SQLite, or Postgres
//! with `AGENTICAI_TEST_DATABASE=postgres`). The sandbox itself is exercised in `executor`'s
//! tests and end to end in `server`'s.

mod agent_loop_guards;
mod conversation_window;
mod llm_anthropic;
mod llm_common;
mod llm_openai;
mod recovery_contract;
mod support;
