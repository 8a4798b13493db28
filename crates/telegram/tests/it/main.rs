//! Integration tests of the Telegram channel against a fake Bot API server that speaks the real
//! JSON, and a real database.

mod agent_relays;
mod api_client;
mod ingress_polling;
mod ingress_webhook;
mod outbox;
mod progress;
mod support;
mod support_relay;

mod conversation_agent;
mod conversation_approvals;
mod conversation_commands;
mod conversation_onboarding;
mod conversation_safety;
mod support_chat;
