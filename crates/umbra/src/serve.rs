//! `umbra serve`: runs the gateway until SIGINT or SIGTERM.

use crate::Usage;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ServeArgs {
    /// The gateway's configuration (TOML; see examples/gateway.toml and README.md).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
}

pub fn serve(args: ServeArgs) -> Result<ExitCode, Usage> {
    let config = umbra_gateway::Config::load(&args.config).map_err(|e| Usage(e.to_string()))?;
    if args.check {
        config
            .preflight()
            .map_err(|e| Usage(format!("{}: {e}", args.config.display())))?;
        println!("{}: configuration is valid", args.config.display());
        return Ok(ExitCode::SUCCESS);
    }
    // signals are taken before anything starts, so none is missed
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .map_err(|e| Usage(format!("cannot handle signals: {e}")))?;
    let gateway = match umbra_gateway::Gateway::start(&config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("umbra: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if let Some(a) = gateway.dimse_addr {
        eprintln!("umbra: DIMSE listening on {a}");
    }
    if let Some(a) = gateway.http_addr {
        eprintln!("umbra: HTTP listening on {a}");
    }
    let _ = signals.forever().next();
    eprintln!("umbra: stopping: finishing work in flight");
    gateway.shutdown();
    Ok(ExitCode::SUCCESS)
}
