//! Integration tests for the bubblewrap sandbox, against the real `bwrap`.

mod basics;
mod confinement;
mod egress;
mod escape_filesystem;
mod escape_network;
mod escape_privilege;
mod escape_resources;
mod limits;
mod redact;
mod setup;
mod support;
mod workspaces;
