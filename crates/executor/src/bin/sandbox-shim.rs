//! The sandbox shim as a standalone executable (used by this crate's tests and benches; the
//! server runs the same code from a hidden subcommand of its own binary).

fn main() {
    executor::shim::shim_main(std::env::args_os().skip(1).collect())
}
