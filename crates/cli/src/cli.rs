//! The command line's shape: `flotilla <group> <command>`. Each group is a subcommand so that
//! later groups (`flotilla rollout …`) slot in beside `compat` without changing it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum, builder::PossibleValue};
use flotilla_compat::Category;

use crate::rollout::RolloutArgs;

#[derive(Debug, Parser)]
#[command(
    name = "flotilla",
    version,
    about = "Version, publish and upgrade a fleet of gRPC services without breaking their callers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Protobuf schema compatibility.
    #[command(subcommand)]
    Compat(CompatCommand),
    /// Rollouts: start, watch, pause, promote, abort and roll back, through the orchestrator.
    Rollout(RolloutArgs),
    /// Ask a server's grpc.health.v1 Check: prints the status; exit status 0 only when SERVING,
    /// 1 otherwise, 2 when the server cannot be asked. For container health checks.
    Health(HealthArgs),
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The server: host:port or a URL.
    #[arg(value_name = "ADDRESS")]
    pub address: String,

    /// The health name to ask about; empty is the server as a whole.
    #[arg(long, default_value = "")]
    pub service: String,

    /// How long to wait for the connection and the answer, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    pub timeout_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum CompatCommand {
    /// Find the changes in NEW that break users of OLD, with buf's breaking-change rules.
    ///
    /// Exit status: 0 when NEW is compatible with OLD, 1 when it has breaking changes,
    /// 2 when an input cannot be read or the command line is wrong.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The new schema: a directory of .proto files (it is the include path) or a binary
    /// FileDescriptorSet file (`buf build -o new.binpb`, `protoc --include_imports -o new.pb`).
    #[arg(value_name = "NEW")]
    pub new: PathBuf,

    /// The schema NEW must stay compatible with, in the same forms as NEW.
    #[arg(long, value_name = "OLD")]
    pub against: PathBuf,

    /// buf's rule category to check, strictest first (case-insensitive).
    #[arg(
        long,
        value_name = "CATEGORY",
        default_value = "WIRE_JSON",
        ignore_case = true
    )]
    pub category: CategoryArg,

    /// How to print the result on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// The library's [`Category`] as a command-line value, spelled as buf spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CategoryArg(pub Category);

impl ValueEnum for CategoryArg {
    fn value_variants<'a>() -> &'a [Self] {
        const VARIANTS: [CategoryArg; 4] = [
            CategoryArg(Category::File),
            CategoryArg(Category::Package),
            CategoryArg(Category::WireJson),
            CategoryArg(Category::Wire),
        ];
        &VARIANTS
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self.0 {
            Category::File => "generated code stays source-compatible, per file",
            Category::Package => "generated code stays source-compatible, per package",
            Category::WireJson => "the binary and JSON encodings stay compatible",
            Category::Wire => "the binary encoding stays compatible",
        };
        Some(PossibleValue::new(self.0.as_str()).help(help))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A report for people.
    Text,
    /// One JSON object, for scripts.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<CheckArgs, clap::Error> {
        let cli = Cli::try_parse_from(["flotilla", "compat", "check"].iter().chain(args).copied())?;
        let Command::Compat(CompatCommand::Check(check)) = cli.command else {
            panic!("not a compat check: {:?}", cli.command);
        };
        Ok(check)
    }

    #[test]
    fn defaults_to_wire_json_and_text() {
        let args = parse(&["new", "--against", "old"]).unwrap();
        assert_eq!(args.new, PathBuf::from("new"));
        assert_eq!(args.against, PathBuf::from("old"));
        assert_eq!(args.category, CategoryArg(Category::WireJson));
        assert_eq!(args.format, OutputFormat::Text);
    }

    #[test]
    fn category_is_case_insensitive() {
        for (text, expected) in [
            ("wire", Category::Wire),
            ("Wire_Json", Category::WireJson),
            ("PACKAGE", Category::Package),
            ("file", Category::File),
        ] {
            let args = parse(&["new", "--against", "old", "--category", text]).unwrap();
            assert_eq!(args.category, CategoryArg(expected), "{text}");
        }
    }

    #[test]
    fn unknown_category_and_missing_against_are_usage_errors() {
        let error = parse(&["new", "--against", "old", "--category", "CSR"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::InvalidValue);
        assert!(error.to_string().contains("WIRE_JSON"), "{error}");

        let error = parse(&["new"]).unwrap_err();
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn json_format() {
        let args = parse(&["new", "--against", "old", "--format", "json"]).unwrap();
        assert_eq!(args.format, OutputFormat::Json);
    }

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
