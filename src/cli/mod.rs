//! The command-line edge: argument parsing (clap derive, every flag with an `env`
//! twin), logging setup, and the commands. `anyhow` lives here and in `main` only.

use clap::{Parser, Subcommand};

pub mod demo;
pub mod eval;
pub mod fixtures;
pub mod gen;
pub mod run;
pub mod score;

/// stepup decides, event by event, when a contractor must prove who they are again.
///
/// Identity-provider events in; allow / step-up / deny decisions out, each with
/// the reasons that drove it.
#[derive(Parser, Debug)]
#[command(name = "stepup", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, env = "STEPUP_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax, e.g. `info,stepup=debug`).
    #[arg(long, global = true, env = "STEPUP_LOG", default_value = "info")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Score a file (or stdin) of events offline: one decision per event, in order.
    Score(score::ScoreArgs),
    /// Measure detection quality on labelled events, beside a simple rules baseline.
    Eval(eval::EvalArgs),
    /// Generate realistic contractor traffic with labelled attacks.
    Gen(gen::GenArgs),
    /// Write the project's small fixture geo databases (tests, offline demos).
    Fixtures(fixtures::FixturesArgs),
    /// Run the streaming worker: Kafka events in, step-up triggers out.
    Run(run::RunArgs),
    /// The streaming worker on an in-process Kafka mock cluster with generated traffic.
    Demo(demo::DemoArgs),
}

pub fn init_logging(format: LogFormat, filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b.json().try_init(),
    };
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    init_logging(cli.log_format, &cli.log);
    match cli.command {
        Command::Score(a) => score::run(&a),
        Command::Eval(a) => eval::run(&a),
        Command::Run(a) => run::run(&a),
        Command::Demo(a) => demo::run(&a),
        Command::Gen(a) => gen::run(&a).map(|()| std::process::ExitCode::SUCCESS),
        Command::Fixtures(a) => fixtures::run(&a).map(|()| std::process::ExitCode::SUCCESS),
    }
}
