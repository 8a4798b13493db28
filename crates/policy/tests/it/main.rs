//! The policy crate's integration tests: one binary, scenario-named modules.
