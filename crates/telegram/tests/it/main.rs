//! Integration tests of the Telegram channel against a fake Bot API server that speaks the real
//! JSON, and a real database.
