//! The store crate's integration tests, one binary against real components (DESIGN.md, "Real
//! components in tests").

mod bus;
mod objects;
mod support;
