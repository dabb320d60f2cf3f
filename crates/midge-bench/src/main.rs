//! `midge-bench <scenario> [options]`: see crates/midge-bench/README.md.
//!
//! Exit status: 0 passed; 1 the run completed but failed verification (QoS 1/2 loss or
//! duplicates, clients that could not connect); 2 the run could not be done (bad options,
//! broker unreachable, a client refused or cut off).

use std::process::ExitCode;

use midge_bench::{Options, OptionsError};

fn main() -> ExitCode {
    let options = match Options::from_args(std::env::args_os()) {
        Ok(o) => o,
        Err(OptionsError::Usage(e)) => e.exit(),
        Err(OptionsError::Invalid(e)) => {
            eprintln!("midge-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match midge_bench::runtime(options.threads) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("midge-bench: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(midge_bench::run(&options)) {
        Ok(report) => {
            print!("{}", report.human());
            if options.json {
                println!("{}", report.json());
            }
            if report.failures().is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("midge-bench: {e}");
            ExitCode::from(2)
        }
    }
}
