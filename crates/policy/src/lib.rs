//! AgenticAI's policy engine. Pure and fast: no I/O, no async.
//!
//! - [`normalize`]: what untrusted or phone-typed text becomes before anything looks at it.
//! - [`classify`]: the risk tier of a shell action, from parsing it with a real shell grammar and
//!   a rule table kept as data (`rules/*.toml`). The tier never comes from the model.
//! - [`binding`]: the hash an approval is bound to, so approving X never runs X′.
//! - [`scan`]: the injection scanner for user messages and tool output (instruction overrides,
//!   chat-template tokens, hidden characters, exfiltration, encoded payloads).
//! - [`decision`]: the layered decision (SYSTEM_ENFORCED, ORG_DEFAULT, USER_OVERRIDE) over a tier
//!   and its context: allow, ask a human, or deny. Deny by default; errors fail closed.
//! - [`gate`]: normalise + classify + decide, the one entry point for "what happens to this
//!   command" (task creation, `policy explain`, the agent's shell tool).

pub mod binding;
pub mod classify;
pub mod decision;
pub mod gate;
pub mod normalize;
pub mod scan;
