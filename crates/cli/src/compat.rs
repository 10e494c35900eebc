//! `flotilla compat check NEW --against OLD`: load both schemas, compare them with
//! flotilla-compat, print the result, and say which exit status it deserves.

use std::{
    io::{self, IsTerminal, Write},
    path::PathBuf,
};

use flotilla_compat::{CompatError, Side};

use crate::{
    cli::{CheckArgs, OutputFormat},
    report::{self, Outcome, Style},
    schema_input::{self, InputError, Role},
};

/// The comparison's answer, which is the command's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Compatible,
    Breaking,
}

impl Verdict {
    /// 0 and 1, as `buf breaking` and `diff` answer; 2 is left for inputs that cannot be
    /// compared ([`crate::EXIT_BAD_INPUT`]), so CI can tell a break from a broken job.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Compatible => 0,
            Self::Breaking => 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Input(#[from] InputError),

    /// The checker refused a schema that loaded, e.g. one whose imports are missing.
    #[error("{role} {}", path.display())]
    Rejected {
        role: Role,
        path: PathBuf,
        #[source]
        source: CompatError,
    },

    /// The checker failed on two schemas that loaded: a defect of the checker.
    #[error("comparing {} with {}", new.display(), old.display())]
    Engine {
        new: PathBuf,
        old: PathBuf,
        #[source]
        source: CompatError,
    },

    #[error("writing the report")]
    Output(#[source] io::Error),
}

/// Runs the check and prints its report on stdout.
pub fn run_check(args: &CheckArgs) -> Result<Verdict, CheckError> {
    let style = Style {
        colour: io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    check(args, style, &mut io::stdout().lock())
}

/// The check, printing to `out`.
pub fn check(args: &CheckArgs, style: Style, out: &mut impl Write) -> Result<Verdict, CheckError> {
    let new = schema_input::load(&args.new, Role::New)?;
    let old = schema_input::load(&args.against, Role::Old)?;
    let category = args.category.0;
    let report = flotilla_compat::check(&old, &new, category).map_err(|source| {
        let (role, path) = match side_of(&source) {
            Some(Side::Current) => (Role::New, &args.new),
            Some(Side::Previous) => (Role::Old, &args.against),
            None => {
                return CheckError::Engine {
                    new: args.new.clone(),
                    old: args.against.clone(),
                    source,
                };
            }
        };
        CheckError::Rejected {
            role,
            path: path.clone(),
            source,
        }
    })?;

    let new_name = args.new.display().to_string();
    let old_name = args.against.display().to_string();
    let outcome = Outcome {
        new: &new_name,
        old: &old_name,
        category,
        report: &report,
    };
    // Rendered whole before writing, so that a failed write never leaves half a JSON object.
    let mut rendered = Vec::new();
    match args.format {
        OutputFormat::Text => report::write_text(&outcome, style, &mut rendered),
        OutputFormat::Json => report::write_json(&outcome, &mut rendered),
    }
    .map_err(CheckError::Output)?;
    match out.write_all(&rendered).and_then(|()| out.flush()) {
        // A reader that stopped early (`| head`) does not change the verdict.
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => {
            return Err(CheckError::Output(error));
        }
        _ => {}
    }

    Ok(if outcome.is_compatible() {
        Verdict::Compatible
    } else {
        Verdict::Breaking
    })
}

fn side_of(error: &CompatError) -> Option<Side> {
    match error {
        CompatError::Decode { which, .. } | CompatError::InvalidSchema { which, .. } => {
            Some(*which)
        }
        CompatError::Internal => None,
    }
}
