//! `auth-broker`: one binary for the broker and its operators.
#![forbid(unsafe_code)]
// Doc comments here are clap `--help` text, read in a terminal: `<https://...>` would
// show the brackets, so bare URLs are right for them.
#![allow(rustdoc::bare_urls)]

mod cli;
mod client_cmd;
mod client_side;
mod keys_cmd;
mod serve_cmd;
mod settings;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<client_side::call::UsageError>().is_some() => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
