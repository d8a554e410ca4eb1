//! The `amani` binary: parse the command line, hand over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    amani::cli::run(amani::cli::Cli::parse())
}
