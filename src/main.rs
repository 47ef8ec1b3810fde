//! The `rotagate` binary: parse arguments, set up logging, run, exit with 0, 1 or 2.

use std::process::ExitCode;

use clap::Parser;
use rotagate::cli::Cli;

fn main() -> ExitCode {
    // rotagate's own secrets are registered (masked under Actions, redacted everywhere)
    // before anything is printed, then leave the environment, and the process becomes
    // non-dumpable: a step's child cannot read them back from its parent.
    rotagate::secret::take_process_secrets();
    forget_secret_env();
    rotagate::secret::harden_process();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            return ExitCode::from(if usage { 2 } else { 0 });
        }
    };
    rotagate::app::mask_startup(&cli);
    rotagate::logging::init(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(rotagate::app::main_with(cli))
}

/// Removes rotagate's secret variables from the process environment once the library
/// holds them.
#[allow(unsafe_code)]
fn forget_secret_env() {
    for name in rotagate::secret::PROCESS_SECRETS {
        // SAFETY: called first thing in `main`, before the async runtime or any other
        // thread exists, so nothing reads the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
}
