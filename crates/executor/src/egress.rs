//! The host-side egress proxy (HTTP CONNECT over a Unix socket, host allowlist).
