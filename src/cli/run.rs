//! `stepup run`: the streaming worker. Kafka events in, step-up triggers, decisions,
//! dead letters and the baseline changelog out (see [`crate::worker`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;

use crate::config::Settings;
use crate::enrich::GeoDatabases;
use crate::pipeline::Shared;
use crate::worker::{self, WorkerExit, WorkerOptions};

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Configuration merged over the embedded defaults.
    #[arg(long, env = "STEPUP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers (`host:port[,host:port]`), overrides `[kafka] bootstrap.servers`.
    #[arg(long, env = "STEPUP_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: Option<String>,
    /// City database (GeoIP2/GeoLite2-City or DB-IP Lite / ip-location-db layout).
    #[arg(long, env = "STEPUP_GEOIP")]
    pub geoip: PathBuf,
    /// Optional ASN database (GeoLite2-ASN layout).
    #[arg(long, env = "STEPUP_ASN_DB")]
    pub asn_db: Option<PathBuf>,
    /// Consumer group id (`worker.group_id`).
    #[arg(long, env = "STEPUP_GROUP_ID")]
    pub group_id: Option<String>,
    /// Address of /metrics, /healthz and /readyz (`worker.metrics_addr`); `off` disables.
    #[arg(long, env = "STEPUP_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Input events topic.
    #[arg(long, env = "STEPUP_TOPIC_EVENTS")]
    pub topic_events: Option<String>,
    /// Contractor registry topic (compacted, read as a table).
    #[arg(long, env = "STEPUP_TOPIC_CONTRACTORS")]
    pub topic_contractors: Option<String>,
    /// Step-up triggers topic (step_up and deny decisions only).
    #[arg(long, env = "STEPUP_TOPIC_TRIGGERS")]
    pub topic_triggers: Option<String>,
    /// Decisions topic (every decision).
    #[arg(long, env = "STEPUP_TOPIC_DECISIONS")]
    pub topic_decisions: Option<String>,
    /// Dead-letter topic (records that could not be decoded).
    #[arg(long, env = "STEPUP_TOPIC_DLQ")]
    pub topic_dlq: Option<String>,
    /// Baseline changelog topic (compacted; same partition count as the events topic).
    #[arg(long, env = "STEPUP_TOPIC_CHANGELOG")]
    pub topic_changelog: Option<String>,
    /// Do not publish every decision (triggers only).
    #[arg(long, env = "STEPUP_NO_DECISIONS")]
    pub no_decisions: bool,
    /// Do not create missing topics (fail instead).
    #[arg(long, env = "STEPUP_NO_CREATE_TOPICS")]
    pub no_create_topics: bool,
    /// Partitions of the topics `run` creates (`worker.partitions`).
    #[arg(long, env = "STEPUP_PARTITIONS")]
    pub partitions: Option<i32>,
    /// HMAC-SHA256 key file: triggers get a `stepup-signature: v1=<hex>` header.
    #[arg(long, env = "STEPUP_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
}

impl RunArgs {
    /// Flags as `STEPUP_*` layers over the environment (validated by the config loader).
    fn env_layers(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = crate::config::stepup_env();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                env.push((k.to_string(), v.clone()));
            }
        };
        put("STEPUP_KAFKA_BOOTSTRAP_SERVERS", &self.bootstrap_servers);
        put("STEPUP_GROUP_ID", &self.group_id);
        put("STEPUP_METRICS_ADDR", &self.metrics_addr);
        put("STEPUP_TOPIC_EVENTS", &self.topic_events);
        put("STEPUP_TOPIC_CONTRACTORS", &self.topic_contractors);
        put("STEPUP_TOPIC_TRIGGERS", &self.topic_triggers);
        put("STEPUP_TOPIC_DECISIONS", &self.topic_decisions);
        put("STEPUP_TOPIC_DLQ", &self.topic_dlq);
        put("STEPUP_TOPIC_CHANGELOG", &self.topic_changelog);
        put(
            "STEPUP_SIGNING_KEY_FILE",
            &self.signing_key_file.as_ref().map(|p| p.display().to_string()),
        );
        env
    }

    /// Defaults → config file → environment → flags.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let mut s = Settings::load_layers(self.config.as_deref(), &self.env_layers())?;
        if self.no_decisions {
            s.worker.publish_decisions = false;
        }
        if self.no_create_topics {
            s.worker.create_topics = false;
        }
        if let Some(p) = self.partitions {
            anyhow::ensure!(p >= 1, "--partitions must be at least 1");
            s.worker.partitions = p;
        }
        anyhow::ensure!(
            s.kafka.get("bootstrap.servers").is_some_and(|b| !b.trim().is_empty()),
            "no Kafka bootstrap servers: pass --bootstrap-servers (or STEPUP_BOOTSTRAP_SERVERS)"
        );
        Ok(s)
    }
}

pub fn run(a: &RunArgs) -> anyhow::Result<ExitCode> {
    let settings = a.settings()?;
    let geo = GeoDatabases::open(&a.geoip, a.asn_db.as_deref())?;
    tracing::info!(geo = %geo.description, "geo databases open");
    let shared = Shared {
        settings: Arc::new(settings),
        geo: Arc::new(geo),
    };
    serve(shared, WorkerOptions::default())
}

/// Run a worker until SIGTERM/SIGINT (or a fatal error), with the HTTP endpoints
/// on `worker.metrics_addr`. Shared by `run` and `demo`'s code path.
pub fn serve(shared: Shared, opts: WorkerOptions) -> anyhow::Result<ExitCode> {
    let metrics_addr = shared.settings.worker.metrics_addr.clone();
    let drain = Duration::from_millis(shared.settings.worker.drain_timeout_ms);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("stepup-ctl")
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    // bind first (a bad address fails before anything starts); until the worker is
    // up, /healthz answers 200 and /readyz 503 "starting"
    let probe: Arc<OnceLock<worker::Probe>> = Arc::new(OnceLock::new());
    if !metrics_addr.is_empty() && metrics_addr != "off" {
        let listener = rt
            .block_on(crate::http::bind(&metrics_addr))
            .with_context(|| format!("binding the metrics address {metrics_addr}"))?;
        let bound = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or(metrics_addr.clone());
        tracing::info!(addr = %bound, "serving /metrics /healthz /readyz");
        let probe = probe.clone();
        rt.spawn(crate::http::serve(
            listener,
            Arc::new(move |p: &str| match probe.get() {
                Some(pr) => pr.respond(p),
                None => match p {
                    "/healthz" => (200, "text/plain", "starting\n".into()),
                    "/readyz" => (503, "text/plain", "not ready: starting\n".into()),
                    "/metrics" => (200, "text/plain; version=0.0.4", String::new()),
                    _ => (404, "text/plain", "not found\n".into()),
                },
            }),
        ));
    }
    let handle = worker::start(shared, opts)?;
    let _ = probe.set(handle.probe());
    let stopper = handle.stopper();
    rt.spawn(async move {
        wait_signal().await;
        tracing::info!("signal received: stopping (a second signal exits at once)");
        stopper.stop();
        // hard bound on the shutdown
        let hard = tokio::time::sleep(drain + Duration::from_secs(10));
        tokio::select! {
            _ = wait_signal() => {
                tracing::warn!("second signal: exiting without draining");
                std::process::exit(130);
            }
            _ = hard => {
                tracing::error!("shutdown did not finish in time; exiting");
                std::process::exit(1);
            }
        }
    });
    let exit = handle.join();
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(match exit {
        WorkerExit::Clean => ExitCode::SUCCESS,
        WorkerExit::Incomplete { unacked } => {
            tracing::warn!(
                unacked,
                "stopped with unacknowledged outputs: their inputs were not committed and will be re-processed"
            );
            ExitCode::from(1)
        }
        WorkerExit::Failed(msg) => {
            eprintln!("stepup: error: {msg}");
            ExitCode::from(1)
        }
    })
}

async fn wait_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn flags_override_config_and_need_no_file() {
        let cli = crate::cli::Cli::try_parse_from([
            "stepup",
            "run",
            "--bootstrap-servers",
            "10.0.0.1:9092",
            "--geoip",
            "x.mmdb",
            "--topic-events",
            "ev",
            "--no-decisions",
            "--partitions",
            "3",
        ])
        .unwrap();
        let crate::cli::Command::Run(a) = cli.command else {
            panic!("run expected")
        };
        let s = a.settings().unwrap();
        assert_eq!(s.kafka["bootstrap.servers"], "10.0.0.1:9092");
        assert_eq!(s.topics.events, "ev");
        assert!(!s.worker.publish_decisions);
        assert_eq!(s.worker.partitions, 3);
        let bad = RunArgs {
            topic_dlq: Some("bad topic".into()),
            ..a
        };
        assert!(bad.settings().unwrap_err().to_string().contains("topics.dlq"));
    }
}
