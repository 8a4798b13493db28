//! Redaction of secret values from output.
