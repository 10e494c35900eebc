//! `flotilla rollout …`: the rollout orchestrator's operator commands.
//!
//! The command line's shape is here with the dispatch; turning arguments into requests
//! ([`request`]), printing ([`render`], [`json`]), following a rollout ([`watch`]) and the errors
//! ([`error`]) each have a module, and all but the dispatch and the stream loop are pure.

pub mod error;
pub mod json;
pub mod parse;
pub mod render;
pub mod request;
pub mod watch;

use std::{
    io::{self, IsTerminal, Write},
    time::Duration,
};

use clap::{Args, Subcommand, ValueEnum};
use flotilla_proto::rollout::v1::{self as pb, orchestrator_client::OrchestratorClient};
use tonic::transport::{Channel, Endpoint};

pub use self::error::RolloutError;
use self::{parse::Steps, watch::Follow};
use crate::{cli::OutputFormat, report::Style};

/// Where the orchestrator listens unless told otherwise.
pub const DEFAULT_ORCHESTRATOR: &str = "http://127.0.0.1:50061";

#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// The orchestrator's address.
    #[arg(
        long,
        global = true,
        env = "FLOTILLA_ORCHESTRATOR",
        default_value = DEFAULT_ORCHESTRATOR,
        value_name = "URL"
    )]
    pub orchestrator: String,

    /// How to print results on stdout. With json, watching prints one JSON object per update,
    /// one per line.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Start upgrading SERVICE to VERSION.
    ///
    /// The orchestrator first checks the version's lifecycle, its compatibility with the versions
    /// serving and every consumer's requirement; a refusal lists each failed gate. Durations
    /// (DUR) are a number and a unit: 500ms, 1.5s, 2m, 1h.
    Start(Box<StartArgs>),
    /// Show one rollout: plan step, state, weights, instances, last analysis and halt reason.
    Status(IdArgs),
    /// List rollouts, newest first.
    List(ListArgs),
    /// Follow a rollout until it ends.
    ///
    /// On a terminal the rollout is redrawn in place; otherwise (a pipe, a log) one line is
    /// printed per event. Exit status: 0 when it succeeds, 1 when it is aborted, 2 on errors
    /// (including a stream that ends before the rollout does). Ctrl-C stops watching, not the
    /// rollout.
    Watch(IdArgs),
    /// Hold a progressing rollout at its current step; traffic and instances stay as they are.
    Pause(ReasonArgs),
    /// Continue a paused rollout (paused by an operator or halted by an inconclusive analysis).
    Resume(IdArgs),
    /// End the current pause step, or with --full skip every remaining step and analysis.
    Promote(PromoteArgs),
    /// Send all traffic back to the stable version, then remove the new instances.
    Abort(ReasonArgs),
    /// Start a rollout back to an earlier revision of SERVICE.
    ///
    /// Within the rollback window after that revision was replaced, it skips steps and
    /// analysis.
    Rollback(RollbackArgs),
    /// List the revisions of SERVICE, newest first.
    ///
    /// A revision is a version that a rollout brought to full traffic.
    Revisions(ServiceArgs),
    /// Tell why a rollout is where it is.
    ///
    /// A summary of where it is and what happens next, every gate's result with its figures and
    /// query, the last events, and each instance's grpc.health.v1 status checked now beside the
    /// status its orchestrator last saw.
    Explain(ExplainArgs),
}

/// Which strategy a rollout uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyKind {
    /// Shift traffic by steps, with pauses and analysis.
    Canary,
    /// Replace instances a few at a time; traffic follows instance counts.
    Rolling,
    /// Start the new set beside the old with no traffic, then switch all traffic at once.
    BlueGreen,
}

impl StrategyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Canary => "canary",
            Self::Rolling => "rolling",
            Self::BlueGreen => "blue-green",
        }
    }
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The service to upgrade, as named in the registry.
    pub service: String,
    /// The target version; it must be published with an artifact.
    pub version: String,

    /// The strategy; unset means the orchestrator's default, a canary. Implied by --steps
    /// (canary), --max-surge and --max-unavailable (rolling), --auto-promote-after and
    /// --rollback-window (blue-green).
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyKind>,

    /// Canary steps, comma-separated: a weight in percent (10), `pause` (until promoted),
    /// `pause:DUR`, `analysis:N` (N passing intervals), e.g. 10,pause:5s,analysis:3,50,pause,100.
    /// Unset: the orchestrator's default, 10%, analysis, 50%, analysis, 100%.
    #[arg(long, value_parser = parse::steps, value_name = "STEPS")]
    pub steps: Option<Steps>,

    /// Rolling: instances above the desired count during the update.
    #[arg(long, value_name = "N")]
    pub max_surge: Option<u32>,
    /// Rolling: instances below the desired count during the update.
    #[arg(long, value_name = "N")]
    pub max_unavailable: Option<u32>,

    /// Blue-green: switch by itself this long after the preview is healthy (default: wait for
    /// promote).
    #[arg(long, value_parser = parse::duration, value_name = "DUR")]
    pub auto_promote_after: Option<Duration>,
    /// Blue-green: how long the old set keeps running after the switch (default 30s).
    #[arg(long, value_parser = parse::duration, value_name = "DUR")]
    pub rollback_window: Option<Duration>,

    /// Instances of the new version at the end (default: as many as the stable version runs).
    #[arg(long, value_name = "N")]
    pub replicas: Option<u32>,

    /// Analysis: time between measurements (default 1s).
    #[arg(long, value_parser = parse::duration, value_name = "DUR")]
    pub analysis_interval: Option<Duration>,
    /// Analysis: how far the new version's error ratio may exceed the stable one's (default
    /// 0.01).
    #[arg(long, value_name = "F")]
    pub max_error_ratio_increase: Option<f64>,
    /// Analysis: the new version's p99 latency may be at most the stable one's times this
    /// (default 1.5).
    #[arg(long, value_name = "F")]
    pub max_p99_ratio: Option<f64>,
    /// Analysis: p99 latencies at or below this always pass (default 25ms).
    #[arg(long, value_parser = parse::duration, value_name = "DUR")]
    pub p99_floor: Option<Duration>,
    /// Analysis: an interval with fewer calls to the new version is inconclusive (default 20).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub min_requests: Option<u32>,
    /// Analysis: failed intervals tolerated; the next one aborts (default 0).
    #[arg(long, value_name = "N")]
    pub failure_limit: Option<u32>,
    /// Analysis: inconclusive intervals in a row tolerated; the next one pauses (default 5).
    #[arg(long, value_name = "N")]
    pub inconclusive_limit: Option<u32>,

    /// Each new instance must be SERVING within this (default 30s).
    #[arg(long, value_parser = parse::duration, value_name = "DUR")]
    pub health_deadline: Option<Duration>,
    /// A step that makes no progress for this long aborts the rollout (default 10m).
    #[arg(long, value_parser = parse::duration, value_name = "DUR")]
    pub progress_deadline: Option<Duration>,

    /// Allow a deprecated target version (retired and yanked ones are never rolled out).
    #[arg(long)]
    pub force: bool,

    /// Follow the rollout once started, as `flotilla rollout watch` does (and with its exit
    /// status).
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The rollout's id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ReasonArgs {
    /// The rollout's id.
    pub id: String,
    /// Why, for the rollout's history.
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The rollout's id.
    pub id: String,
    /// Skip every remaining step and analysis, not just the current pause.
    #[arg(long)]
    pub full: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this service's rollouts.
    #[arg(long)]
    pub service: Option<String>,
    /// Only rollouts still in progress (PROGRESSING, PAUSED, ABORTING).
    #[arg(long)]
    pub active: bool,
    /// At most this many (default: every one, page after page).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The service to roll back.
    pub service: String,
    /// The revision to return to (default: the one before the current).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub revision: Option<u64>,
    /// Follow the rollback once started, as `flotilla rollout watch` does.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The rollout's id.
    pub id: String,
    /// How many of the last events to show (1 to 100).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub events: u32,
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The service.
    pub service: String,
}

/// What the terminal can do: redraw in place, and colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Console {
    /// Redraw a watched rollout in place; otherwise print one line per event.
    pub live: bool,
    pub style: Style,
}

impl Console {
    /// Plain and append-only, as into a pipe or a log.
    pub const PLAIN: Self = Self {
        live: false,
        style: Style { colour: false },
    };

    /// Live and coloured only on a terminal (colour not under `NO_COLOR`).
    pub fn detect() -> Self {
        let terminal = io::stdout().is_terminal();
        Self {
            live: terminal,
            style: Style {
                colour: terminal && std::env::var_os("NO_COLOR").is_none(),
            },
        }
    }
}

/// How a command ended, which is its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The command was carried out (and nothing was watched).
    Done,
    /// A watched rollout ended with all traffic on its new version.
    Succeeded,
    /// A watched rollout was aborted.
    Aborted,
}

impl Outcome {
    /// 0, or 1 for an aborted rollout, so a deploy script fails on it; errors are
    /// [`crate::EXIT_BAD_INPUT`].
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Done | Self::Succeeded => 0,
            Self::Aborted => 1,
        }
    }
}

/// The binary's entry point: runs the command on a runtime of its own, printing to stdout.
pub fn main(args: &RolloutArgs) -> Result<Outcome, RolloutError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RolloutError::Runtime)?;
    runtime.block_on(run(args, Console::detect(), &mut io::stdout().lock()))
}

/// Runs one `flotilla rollout` command, printing its results to `out`.
pub async fn run(
    args: &RolloutArgs,
    console: Console,
    out: &mut impl Write,
) -> Result<Outcome, RolloutError> {
    let format = args.format;
    let client = || connect(&args.orchestrator);
    match &args.command {
        RolloutCommand::Start(start) => {
            let request = request::start(start).map_err(RolloutError::Usage)?;
            let mut client = client().await?;
            let rollout = client
                .start_rollout(request)
                .await
                .map_err(rpc("StartRollout"))?
                .into_inner();
            started(&mut client, &rollout, start.watch, console, format, out).await
        }
        RolloutCommand::Status(IdArgs { id }) => {
            let rollout = client()
                .await?
                .get_rollout(pb::GetRolloutRequest { id: id.clone() })
                .await
                .map_err(rpc("GetRollout"))?
                .into_inner();
            print_rollout(None, &rollout, console, format, out)
        }
        RolloutCommand::List(list) => {
            let rollouts = list_all(&mut client().await?, list).await?;
            let text = match format {
                OutputFormat::Text => render::rollout_table(&rollouts),
                OutputFormat::Json => json::pretty(&json::rollouts(&rollouts)),
            };
            write(out, &text)?;
            Ok(Outcome::Done)
        }
        RolloutCommand::Watch(IdArgs { id }) => {
            follow(&mut client().await?, id, console, format, out).await
        }
        RolloutCommand::Pause(ReasonArgs { id, reason }) => {
            let rollout = client()
                .await?
                .pause(request::pause(id, reason.as_deref()))
                .await
                .map_err(rpc("Pause"))?
                .into_inner();
            print_rollout(Some("pause recorded"), &rollout, console, format, out)
        }
        RolloutCommand::Resume(IdArgs { id }) => {
            let rollout = client()
                .await?
                .resume(pb::ResumeRequest { id: id.clone() })
                .await
                .map_err(rpc("Resume"))?
                .into_inner();
            print_rollout(Some("resume recorded"), &rollout, console, format, out)
        }
        RolloutCommand::Promote(PromoteArgs { id, full }) => {
            let rollout = client()
                .await?
                .promote(pb::PromoteRequest {
                    id: id.clone(),
                    full: *full,
                })
                .await
                .map_err(rpc("Promote"))?
                .into_inner();
            let what = if *full {
                "full promotion recorded"
            } else {
                "promotion recorded"
            };
            print_rollout(Some(what), &rollout, console, format, out)
        }
        RolloutCommand::Abort(ReasonArgs { id, reason }) => {
            let rollout = client()
                .await?
                .abort(request::abort(id, reason.as_deref()))
                .await
                .map_err(rpc("Abort"))?
                .into_inner();
            print_rollout(Some("abort recorded"), &rollout, console, format, out)
        }
        RolloutCommand::Rollback(rollback) => {
            let mut client = client().await?;
            let rollout = client
                .rollback(request::rollback(rollback))
                .await
                .map_err(rpc("Rollback"))?
                .into_inner();
            started(&mut client, &rollout, rollback.watch, console, format, out).await
        }
        RolloutCommand::Revisions(ServiceArgs { service }) => {
            let revisions = client()
                .await?
                .list_revisions(pb::ListRevisionsRequest {
                    service: service.clone(),
                })
                .await
                .map_err(rpc("ListRevisions"))?
                .into_inner()
                .revisions;
            let text = match format {
                OutputFormat::Text => render::revision_table(service, &revisions),
                OutputFormat::Json => json::pretty(&json::revisions(&revisions)),
            };
            write(out, &text)?;
            Ok(Outcome::Done)
        }
        RolloutCommand::Explain(ExplainArgs { id, events }) => {
            let explanation = client()
                .await?
                .explain_rollout(pb::ExplainRolloutRequest {
                    id: id.clone(),
                    event_limit: *events,
                })
                .await
                .map_err(rpc("ExplainRollout"))?
                .into_inner();
            let text = match format {
                OutputFormat::Text => render::explanation(&explanation, console.style),
                OutputFormat::Json => json::pretty(&json::explanation(&explanation)),
            };
            write(out, &text)?;
            Ok(Outcome::Done)
        }
    }
}

/// Connects at once, so that an unreachable orchestrator is reported as such rather than as the
/// first call's UNAVAILABLE.
async fn connect(url: &str) -> Result<OrchestratorClient<Channel>, RolloutError> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|source| RolloutError::BadUrl {
            url: url.to_owned(),
            source,
        })?
        .connect_timeout(Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .map_err(|source| RolloutError::Connect {
            url: url.to_owned(),
            source,
        })?;
    Ok(OrchestratorClient::new(channel))
}

fn rpc(rpc: &'static str) -> impl FnOnce(tonic::Status) -> RolloutError {
    move |status| RolloutError::Rpc { rpc, status }
}

/// After StartRollout or Rollback: the new rollout, then, when asked, its course. With --watch
/// and --format json only the watch's updates are printed (the first one is the rollout as
/// started), so stdout stays one JSON object per line.
async fn started(
    client: &mut OrchestratorClient<Channel>,
    rollout: &pb::Rollout,
    then_watch: bool,
    console: Console,
    format: OutputFormat,
    out: &mut impl Write,
) -> Result<Outcome, RolloutError> {
    if !(then_watch && format == OutputFormat::Json) {
        print_rollout(Some("started"), rollout, console, format, out)?;
    }
    if then_watch {
        if format == OutputFormat::Text {
            write(out, "\n")?;
        }
        follow(client, &rollout.id, console, format, out).await
    } else {
        Ok(Outcome::Done)
    }
}

fn print_rollout(
    headline: Option<&str>,
    rollout: &pb::Rollout,
    console: Console,
    format: OutputFormat,
    out: &mut impl Write,
) -> Result<Outcome, RolloutError> {
    let text = match format {
        OutputFormat::Text => {
            let body = render::rollout(rollout, console.style);
            match headline {
                Some(headline) => format!("{headline}: {body}"),
                None => body,
            }
        }
        OutputFormat::Json => json::pretty(&json::rollout(rollout)),
    };
    write(out, &text)?;
    Ok(Outcome::Done)
}

/// Every page of ListRollouts, or the first `--limit` rollouts.
async fn list_all(
    client: &mut OrchestratorClient<Channel>,
    args: &ListArgs,
) -> Result<Vec<pb::Rollout>, RolloutError> {
    let mut rollouts = Vec::new();
    let mut token = String::new();
    while let Some(request) = request::list_page(args, token.clone(), rollouts.len()) {
        let page = client
            .list_rollouts(request)
            .await
            .map_err(rpc("ListRollouts"))?
            .into_inner();
        rollouts.extend(page.rollouts);
        if page.next_page_token.is_empty() {
            break;
        }
        // A server that hands back the token it was given would have us ask forever.
        if page.next_page_token == token {
            return Err(RolloutError::PagingLoop);
        }
        token = page.next_page_token;
    }
    if let Some(limit) = args.limit {
        rollouts.truncate(limit as usize);
    }
    Ok(rollouts)
}

/// WatchRollout, printed as `console` and `format` say, until the rollout ends.
async fn follow(
    client: &mut OrchestratorClient<Channel>,
    id: &str,
    console: Console,
    format: OutputFormat,
    out: &mut impl Write,
) -> Result<Outcome, RolloutError> {
    let mut stream = client
        .watch_rollout(pb::WatchRolloutRequest { id: id.to_owned() })
        .await
        .map_err(rpc("WatchRollout"))?
        .into_inner();
    let mut follow = Follow::new(watch::Mode::new(console, format));
    loop {
        let update = stream.message().await.map_err(rpc("WatchRollout"))?;
        let Some(update) = update else {
            return Err(follow.ended_early(id));
        };
        let step = follow.update(&update);
        write(out, &step.output)?;
        // The orchestrator closes the stream when the rollout ends; not waiting for that keeps
        // a watch from hanging on a server that holds it open.
        if let Some(outcome) = step.ended {
            return Ok(outcome);
        }
    }
}

fn write(out: &mut impl Write, text: &str) -> Result<(), RolloutError> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // A reader that stopped early (`| head`) does not change the outcome.
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => Err(RolloutError::Output(error)),
        _ => Ok(()),
    }
}
