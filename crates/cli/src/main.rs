use std::process::ExitCode;

use clap::Parser;
use flotilla_cli::{
    EXIT_BAD_INPUT,
    cli::{Cli, Command, CompatCommand},
    compat, health, rollout,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome: anyhow::Result<u8> = match cli.command {
        Command::Compat(CompatCommand::Check(args)) => compat::run_check(&args)
            .map(|verdict| verdict.exit_code())
            .map_err(anyhow::Error::from),
        Command::Rollout(args) => rollout::main(&args)
            .map(|outcome| outcome.exit_code())
            .map_err(anyhow::Error::from),
        Command::Health(args) => health::main(&args).map_err(anyhow::Error::from),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            // `{:#}` walks the chain of causes: "OLD x.binpb: cannot read it: Permission denied".
            eprintln!("flotilla: error: {error:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}
