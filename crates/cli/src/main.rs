//! `auth-broker`: one binary for the broker and its operators.
#![forbid(unsafe_code)]
// Doc comments here are clap `--help` text, read in a terminal: `<https://...>` would
// show the brackets, so bare URLs are right for them.
#![allow(rustdoc::bare_urls)]

/// mimalloc rather than glibc's malloc: a token request makes about 50 small
/// allocations, and with mimalloc the broker spends about 4 % less CPU per token at
/// the same resident memory (README, "Where a token request's time goes").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `println!` for command output that ends the process quietly when stdout is a
/// closed pipe (`auth-broker doctor | head`), as Unix tools do, instead of panicking
/// the way `println!` does when Rust ignores SIGPIPE.
macro_rules! out {
    () => {
        $crate::write_stdout(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

mod admin_backend;
mod cli;
mod client_cmd;
mod client_side;
mod keys_cmd;
mod remote;
mod serve_cmd;
mod settings;
mod telemetry;

use clap::Parser;
use std::process::ExitCode;

/// Writes one line of command output; see `out!`.
fn write_stdout(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(line)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write to standard output: {e}");
        }
        // The reader is gone (or the disk is full): nothing more can be told.
        std::process::exit(1);
    }
}

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
        Err(e) if e.downcast_ref::<client_side::call::Quiet>().is_some() => ExitCode::FAILURE,
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
