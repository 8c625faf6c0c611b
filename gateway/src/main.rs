//! The `footfall` command.
fn main() -> std::process::ExitCode {
    footfall_gateway::cli::main()
}
