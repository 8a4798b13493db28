//! Integration tests for the bubblewrap sandbox, against the real `bwrap`.

mod basics;
mod confinement;
mod limits;
mod support;
