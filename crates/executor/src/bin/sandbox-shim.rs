//! The sandbox shim as a standalone executable (used by this crate's tests and benches; the
//! server runs the same code from a hidden subcommand of its own binary). Like the server, it
//! accepts an optional leading `__sandbox-shim` dispatch argument.

fn main() {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "__sandbox-shim") {
        args.remove(0);
    }
    executor::shim::shim_main(args)
}
