//! The `apiary` command-line interface.
/// Entry point of the `apiary` binary.
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
