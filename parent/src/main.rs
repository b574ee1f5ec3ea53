//! `parent`: see the crate documentation and `parent --help`.
#![forbid(unsafe_code)]

use clap::Parser;
use parent::cli::{Args, init_logging};
use std::process::ExitCode;
use std::time::Duration;
use tracing::{error, info};

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(parent::server::run(args.into_config()));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(error = %e, "startup failed");
            ExitCode::FAILURE
        }
    }
}
