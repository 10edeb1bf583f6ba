//! `waihu`: the operator's and analyst's command line.

mod admin;
mod analysis;
mod analyze;
mod auth;
mod call;
mod demo;
mod device;
mod display;
mod dnc;
mod export;
mod followup;
mod import;
mod line;
mod output;
mod provider;
mod recording;
mod records;
mod replay;
mod screen;
mod task;
mod tenant;
mod webhook;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "waihu",
    version,
    about = "waihu outbound call campaigns: run the demo, manage tasks, replay events",
    long_about = "waihu outbound call campaigns: run the demo, manage tasks, replay events.\n\n\
                  Speaks gRPC only: the task service (--task-addr), the record service \
                  (--record-addr) and the provider adapter (--provider-addr), for the tenant in \
                  --tenant."
)]
pub struct Cli {
    /// Task service gRPC address.
    #[arg(
        long,
        global = true,
        env = "WAIHU_TASK_ADDR",
        default_value = "http://127.0.0.1:50051"
    )]
    task_addr: String,
    /// Record service gRPC address.
    #[arg(
        long,
        global = true,
        env = "WAIHU_RECORD_ADDR",
        default_value = "http://127.0.0.1:50054"
    )]
    record_addr: String,
    /// Provider adapter gRPC address (lines, work phones).
    #[arg(
        long,
        global = true,
        env = "WAIHU_PROVIDER_ADDR",
        default_value = "http://127.0.0.1:50053"
    )]
    provider_addr: String,
    /// Dialer gRPC address (do-not-call lists, line usage).
    #[arg(
        long,
        global = true,
        env = "WAIHU_DIALER_ADDR",
        default_value = "http://127.0.0.1:50052"
    )]
    dialer_addr: String,
    /// Analysis service gRPC address (a call's analysis, reanalysis).
    #[arg(
        long,
        global = true,
        env = "WAIHU_ANALYSIS_ADDR",
        default_value = "http://127.0.0.1:50055"
    )]
    analysis_addr: String,
    /// Tenant the requests act for.
    #[arg(long, global = true, env = "WAIHU_TENANT", default_value = "default")]
    tenant: String,
    /// Bearer token sent with every request (default: one minted with the local key).
    #[arg(long, global = true, env = "WAIHU_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything: start missing services, import a generated list, dial it on the
    /// simulator, show live progress and the final statistics.
    Demo(demo::DemoArgs),
    /// Create, import, control and watch tasks.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Call records: list and filter them, one in full, a task's report, the day's dashboard.
    #[command(subcommand)]
    Records(records::RecordsCommand),
    /// Follow-ups: write down what came of a call, list those due.
    #[command(subcommand, name = "followup")]
    FollowUp(followup::FollowUpCommand),
    /// What a transcript says (the local analyzer): intent, grade, sentiment, keywords,
    /// summary, language, as JSON.
    Analyze(analyze::AnalyzeArgs),
    /// A call's analysis in the analysis service: where it stands, analyse it again.
    #[command(subcommand)]
    Analysis(analysis::AnalysisCommand),
    /// Recordings: a call's signed, expiring URL, or the file.
    #[command(subcommand)]
    Recording(recording::RecordingCommand),
    /// Read the event store: export events, or rebuild and verify the statistics.
    Replay(replay::ReplayArgs),
    /// Dead letters: list, show and re-drive messages a consumer gave up on.
    #[command(subcommand)]
    Dlq(admin::DlqCommand),
    /// The event store writer: its position, the stream's, and why it halted; re-base after a
    /// stream reset.
    #[command(subcommand)]
    Store(admin::StoreCommand),
    /// Tenants' entitlements (operators): automatic dialing, expiry, task and call limits.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// The tenant's webhooks: results pushed to the business side as they happen.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// The tenant's lines (trunks): create, change, switch off and on, list, status.
    #[command(subcommand)]
    Line(line::LineCommand),
    /// Work phones: a binding QR code for the phone app, the bound phones, status, unbind.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// Click-to-dial: one call now, outside any task; hang up; follow its state.
    #[command(subcommand)]
    Call(call::CallCommand),
    /// Do-not-call lists: the tenant's, or with --global the platform's.
    #[command(subcommand)]
    Dnc(dnc::DncCommand),
    /// Batch number screening (seed 004): screen numbers on a line's batch API, follow the
    /// jobs, download results, roll back, check or override numbers' validity.
    #[command(subcommand)]
    Screen(screen::ScreenCommand),
    /// Tokens for development and tests.
    #[command(subcommand)]
    Auth(auth::AuthCommand),
    /// Provider tools: work out a request or callback signature offline.
    #[command(subcommand)]
    Provider(provider::ProviderCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`waihu ... | head`) instead of panicking on a failed print.
    sigpipe::reset();
    let _telemetry = telemetry();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Auth(_) | Command::Provider(_)) {
        auth::token(&cli);
    }
    let result = match &cli.command {
        Command::Demo(a) => demo::run(&cli, a).await,
        Command::Task(c) => task::run(&cli, c).await,
        Command::Records(c) => records::run(&cli, c).await,
        Command::FollowUp(c) => followup::run(&cli, c).await,
        Command::Recording(c) => recording::run(&cli, c).await,
        Command::Analyze(a) => analyze::run(a),
        Command::Analysis(c) => analysis::run(&cli, c).await,
        Command::Replay(a) => replay::run(&cli, a).await,
        Command::Dlq(c) => admin::dlq(&cli, c).await,
        Command::Store(c) => admin::store(&cli, c).await,
        Command::Tenant(c) => tenant::run(&cli, c).await,
        Command::Webhook(c) => webhook::run(&cli, c).await,
        Command::Line(c) => line::run(&cli, c).await,
        Command::Device(c) => device::run(&cli, c).await,
        Command::Dnc(c) => dnc::run(&cli, c).await,
        Command::Call(c) => call::run(&cli, c).await,
        Command::Screen(c) => screen::run(&cli, c).await,
        Command::Auth(c) => auth::run(&cli, c),
        Command::Provider(c) => provider::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The CLI prints for people; library logs (and spans) only when `RUST_LOG` asks for them.
/// The guard flushes spans when dropped at the end of `main`.
fn telemetry() -> Option<waihu_runtime::telemetry::TelemetryGuard> {
    std::env::var_os("RUST_LOG").map(|_| waihu_runtime::telemetry::init("waihu-cli"))
}

pub type CliError = Box<dyn std::error::Error + Send + Sync>;

/// Turns a gRPC status into a one-line error.
pub fn status(context: &str, s: tonic::Status) -> CliError {
    format!("{context}: {} ({:?})", s.message(), s.code()).into()
}

/// A channel to the record service (statistics, records, export, replay and admin).
pub async fn record_channel(cli: &Cli) -> Result<tonic::transport::Channel, CliError> {
    channel("record", "--record-addr", &cli.record_addr).await
}

/// A channel to the analysis service.
pub async fn analysis_channel(cli: &Cli) -> Result<tonic::transport::Channel, CliError> {
    channel("analysis", "--analysis-addr", &cli.analysis_addr).await
}

/// A channel to the dialer (do-not-call lists).
pub async fn dialer_channel(cli: &Cli) -> Result<tonic::transport::Channel, CliError> {
    channel("dialer", "--dialer-addr", &cli.dialer_addr).await
}

/// A channel to the provider adapter (lines).
pub async fn provider_channel(cli: &Cli) -> Result<tonic::transport::Channel, CliError> {
    channel("provider adapter", "--provider-addr", &cli.provider_addr).await
}

pub async fn task_channel(cli: &Cli) -> Result<tonic::transport::Channel, CliError> {
    channel("task", "--task-addr", &cli.task_addr).await
}

/// A connection to the `service` service at `addr` (given by `flag`).
async fn channel(
    service: &str,
    flag: &str,
    addr: &str,
) -> Result<tonic::transport::Channel, CliError> {
    tonic::transport::Endpoint::from_shared(addr.to_string())
        .map_err(|e| format!("{flag} {addr:?}: {e}"))?
        .connect()
        .await
        .map_err(|e| {
            format!(
                "cannot reach the {service} service at {addr}: {}",
                error_chain(&e)
            )
            .into()
        })
}

/// An error and its sources on one line ("transport error: tcp connect error: Connection
/// refused ...").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
