//! The `apiary` binary: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    apiary_host::cli::main()
}
