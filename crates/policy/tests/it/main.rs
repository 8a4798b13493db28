//! The policy crate's integration tests: one binary, scenario-named modules.

mod classify_corpus;
mod classify_properties;
mod decision_environment;
mod decision_layers;
mod decision_properties;
mod normalize_cases;
mod scan_corpus;
