//! Layered configuration: embedded defaults (`stepup.toml` in the repo) → a file
//! given with `--config` → environment (`STEPUP_...`) → command-line flags (applied
//! by the CLI edge). Validated once at start with errors that name the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::ModelConfig;
use crate::policy::{Policy, PolicyConfig, PolicyError};

/// The commented default configuration, shipped in the repository root.
pub const DEFAULT_TOML: &str = include_str!("../stepup.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("config: {0}")]
    Policy(#[from] PolicyError),
    #[error("config: {0}")]
    Invalid(String),
    #[error("cannot read secret file {path} for kafka property {key:?}: {source}")]
    Secret {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest input record accepted, bytes.
    pub max_event_bytes: usize,
    /// How far past the wall clock an event's time may be (seconds); later ones
    /// are rejected as bad input.
    #[serde(default = "default_future_skew")]
    pub max_future_skew_s: u64,
}

fn default_future_skew() -> u64 {
    3600
}

/// `[topics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topics {
    pub events: String,
    pub contractors: String,
    pub triggers: String,
    pub decisions: String,
    pub dlq: String,
    pub changelog: String,
}

/// `[worker]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    pub group_id: String,
    /// Create missing topics at start (never alters existing ones).
    pub create_topics: bool,
    /// Partitions for topics `run` creates.
    pub partitions: i32,
    pub replication_factor: i32,
    /// Publish every decision to the decisions topic.
    pub publish_decisions: bool,
    /// HTTP address for /metrics, /healthz, /readyz.
    pub metrics_addr: String,
    /// Bound on draining in-flight work on revoke/shutdown, ms.
    pub drain_timeout_ms: u64,
    /// Most records in flight per partition before consumption pauses.
    pub max_in_flight: usize,
    /// Baseline changes are coalesced per user and written to the changelog at
    /// most once per this interval (and at revoke/shutdown), ms; 0 = after every
    /// batch. The input offset is committed only once the write is acknowledged.
    pub changelog_flush_ms: u64,
    /// Add CloudEvents binary-mode `ce_*` headers to triggers and decisions
    /// (default: triggers carry only `content-type`, decisions no headers).
    pub cloudevents_headers: bool,
    /// HMAC-SHA256 key file for signing triggers (absent: unsigned).
    #[serde(default)]
    pub signing_key_file: Option<PathBuf>,
}

/// Everything `score` and `run` need, validated. (`Debug` redacts secrets.)
#[derive(Clone)]
pub struct Settings {
    pub policy: Policy,
    pub policy_config: PolicyConfig,
    pub model: ModelConfig,
    pub limits: Limits,
    pub topics: Topics,
    pub worker: WorkerConfig,
    /// librdkafka properties, passed through as given (secrets included: never log).
    pub kafka: BTreeMap<String, String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("policy_config", &self.policy_config)
            .field("model", &self.model)
            .field("limits", &self.limits)
            .field("topics", &self.topics)
            .field("worker", &self.worker)
            .field("kafka", &self.kafka_redacted())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    limits: Limits,
    model: ModelConfig,
    policy: PolicyConfig,
    topics: Topics,
    worker: WorkerConfig,
    #[serde(default)]
    kafka: BTreeMap<String, toml::Value>,
}

/// Deep-merge `over` into `base` (tables merge, everything else replaces).
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(bv) => merge(bv, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn parse_toml(text: &str, origin: &str) -> Result<toml::Value, ConfigError> {
    text.parse::<toml::Table>()
        .map(toml::Value::Table)
        .map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            // the message and position only: toml's Display quotes the source line,
            // which may hold a secret
            message: match e.span() {
                Some(sp) => format!(
                    "{} (line {})",
                    e.message(),
                    text[..sp.start.min(text.len())].lines().count().max(1)
                ),
                None => e.message().to_string(),
            },
        })
}

fn scalar_string(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The process's `STEPUP_*` variables. Others are never read, so one that is not
/// Unicode elsewhere in the environment cannot stop the start; a `STEPUP_*` one
/// that is not Unicode is skipped with a warning.
pub fn stepup_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter(|(k, _)| k.as_encoded_bytes().starts_with(b"STEPUP_"))
        .filter_map(|(k, v)| match (k.into_string(), v.into_string()) {
            (Ok(k), Ok(v)) => Some((k, v)),
            (k, _) => {
                let name = k.unwrap_or_else(|k| k.to_string_lossy().into_owned());
                tracing::warn!(variable = %name, "environment variable is not valid Unicode: ignored");
                None
            }
        })
        .collect()
}

impl Settings {
    /// The embedded defaults alone.
    pub fn default_embedded() -> Result<Self, ConfigError> {
        Self::load_layers(None, &[])
    }

    /// Defaults → file → the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_layers(file, &stepup_env())
    }

    /// Defaults → file → the given `STEPUP_*` variables. Recognised variables:
    /// `STEPUP_KAFKA_<PROP>` (librdkafka property, `_` → `.`, e.g.
    /// `STEPUP_KAFKA_SASL_PASSWORD` → `sasl.password`), `STEPUP_TOPIC_<NAME>`
    /// (`EVENTS`, `CONTRACTORS`, `TRIGGERS`, `DECISIONS`, `DLQ`, `CHANGELOG`),
    /// `STEPUP_GROUP_ID`, `STEPUP_METRICS_ADDR`, `STEPUP_SIGNING_KEY_FILE`.
    pub fn load_layers(file: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut v = parse_toml(DEFAULT_TOML, "defaults (stepup.toml)")?;
        if let Some(p) = file {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.to_path_buf(),
                source,
            })?;
            let over = parse_toml(&text, &p.display().to_string())?;
            merge(&mut v, over);
        }
        let origin = file.map_or("defaults".to_string(), |p| p.display().to_string());
        let fc: FileConfig = v.try_into().map_err(|e: toml::de::Error| ConfigError::Parse {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        let policy = Policy::compile(&fc.policy)?;
        fc.model.validate().map_err(ConfigError::Invalid)?;
        let mut kafka = BTreeMap::new();
        for (k, val) in &fc.kafka {
            let s = scalar_string(val)
                .ok_or_else(|| ConfigError::Invalid(format!("[kafka] {k:?} must be a string, number or boolean")))?;
            kafka.insert(k.clone(), s);
        }
        let mut s = Settings {
            policy,
            policy_config: fc.policy,
            model: fc.model,
            limits: fc.limits,
            topics: fc.topics,
            worker: fc.worker,
            kafka,
        };
        for (k, val) in env {
            s.apply_env(k, val)?;
        }
        s.resolve_secret_files()?;
        s.validate()?;
        Ok(s)
    }

    fn apply_env(&mut self, key: &str, val: &str) -> Result<(), ConfigError> {
        let Some(rest) = key.strip_prefix("STEPUP_") else {
            return Ok(());
        };
        if let Some(prop) = rest.strip_prefix("KAFKA_") {
            self.kafka
                .insert(prop.to_ascii_lowercase().replace('_', "."), val.to_string());
        } else if let Some(t) = rest.strip_prefix("TOPIC_") {
            let slot = match t {
                "EVENTS" => &mut self.topics.events,
                "CONTRACTORS" => &mut self.topics.contractors,
                "TRIGGERS" => &mut self.topics.triggers,
                "DECISIONS" => &mut self.topics.decisions,
                "DLQ" => &mut self.topics.dlq,
                "CHANGELOG" => &mut self.topics.changelog,
                _ => return Err(ConfigError::Invalid(format!("unknown topic variable {key}"))),
            };
            *slot = val.to_string();
        } else {
            match rest {
                "GROUP_ID" => self.worker.group_id = val.to_string(),
                "METRICS_ADDR" => self.worker.metrics_addr = val.to_string(),
                "SIGNING_KEY_FILE" => self.worker.signing_key_file = Some(PathBuf::from(val)),
                _ => {} // other STEPUP_* variables belong to CLI flags
            }
        }
        Ok(())
    }

    /// `<prop>.file = "/path"` in `[kafka]` reads the secret from a file into `<prop>`.
    fn resolve_secret_files(&mut self) -> Result<(), ConfigError> {
        let files: Vec<(String, String)> = self
            .kafka
            .iter()
            .filter(|(k, _)| k.ends_with(".file"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, path) in files {
            let prop = k.trim_end_matches(".file").to_string();
            // ssl.*.location style properties already take paths; only `.file` suffix is ours
            let secret = std::fs::read_to_string(&path).map_err(|source| ConfigError::Secret {
                key: prop.clone(),
                path: PathBuf::from(&path),
                source,
            })?;
            self.kafka.remove(&k);
            self.kafka
                .insert(prop, secret.trim_end_matches(['\n', '\r']).to_string());
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.limits.max_event_bytes < 64 {
            return Err(ConfigError::Invalid(
                "limits.max_event_bytes must be at least 64".into(),
            ));
        }
        let t = &self.topics;
        for (name, v) in [
            ("events", &t.events),
            ("contractors", &t.contractors),
            ("triggers", &t.triggers),
            ("decisions", &t.decisions),
            ("dlq", &t.dlq),
            ("changelog", &t.changelog),
        ] {
            if v.is_empty() || v.len() > 249 || !v.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                return Err(ConfigError::Invalid(format!(
                    "topics.{name} = {v:?} is not a valid Kafka topic name"
                )));
            }
        }
        if self.worker.partitions < 1 {
            return Err(ConfigError::Invalid("worker.partitions must be at least 1".into()));
        }
        if self.worker.max_in_flight < 1 {
            return Err(ConfigError::Invalid("worker.max_in_flight must be at least 1".into()));
        }
        Ok(())
    }

    /// Kafka properties with secrets masked, for logs.
    pub fn kafka_redacted(&self) -> BTreeMap<String, String> {
        self.kafka
            .iter()
            .map(|(k, v)| {
                let secret = ["password", "secret", "key", "token", "jaas"]
                    .iter()
                    .any(|s| k.contains(s));
                (k.clone(), if secret { "<redacted>".to_string() } else { v.clone() })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        let secret = dir.path().join("pw");
        std::fs::write(&secret, "hunter2\n").unwrap();
        std::fs::write(
            &f,
            format!(
                "[topics]\nevents = \"from-file\"\n[kafka]\n\"sasl.password.file\" = {:?}\n\"queue.buffering.max.ms\" = 5\n",
                secret.display()
            ),
        )
        .unwrap();
        let env = vec![
            ("STEPUP_TOPIC_TRIGGERS".to_string(), "from-env".to_string()),
            (
                "STEPUP_KAFKA_BOOTSTRAP_SERVERS".to_string(),
                "127.0.0.1:9092".to_string(),
            ),
        ];
        let s = Settings::load_layers(Some(&f), &env).unwrap();
        assert_eq!(s.topics.events, "from-file");
        assert_eq!(s.topics.triggers, "from-env");
        assert_eq!(s.topics.dlq, "stepup-dlq");
        assert_eq!(s.kafka["bootstrap.servers"], "127.0.0.1:9092");
        assert_eq!(s.kafka["sasl.password"], "hunter2");
        assert_eq!(s.kafka["queue.buffering.max.ms"], "5");
        assert_eq!(s.kafka_redacted()["sasl.password"], "<redacted>");
    }

    #[test]
    fn bad_config_names_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[model]\nmax_speed_kmh = -3\n").unwrap();
        let e = Settings::load_layers(Some(&f), &[]).unwrap_err().to_string();
        assert!(e.contains("max_speed_kmh"), "{e}");
        std::fs::write(&f, "[topics]\nevents = \"bad topic\"\n").unwrap();
        let e = Settings::load_layers(Some(&f), &[]).unwrap_err().to_string();
        assert!(e.contains("topics.events"), "{e}");
        std::fs::write(&f, "[polcy]\n").unwrap();
        let e = Settings::load_layers(Some(&f), &[]).unwrap_err().to_string();
        assert!(e.contains("polcy"), "{e}");
        let e = Settings::load_layers(Some(Path::new("/nonexistent.toml")), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent.toml"), "{e}");
        for (toml, key) in [
            ("[model]\nfailed_burst = 0\n", "model.failed_burst"),
            ("[model]\nfailed_burst = 10\n", "model.failed_burst"),
            ("[model]\nfailed_window_min = 0\n", "model.failed_window_min"),
            (
                "[model]\ntargeted_attacker_share = 1.5\n",
                "model.targeted_attacker_share",
            ),
            ("[model.weights]\nhour = -1.0\n", "model.weights.hour"),
            ("[model.weights]\nnetwork = nan\n", "model.weights.network"),
        ] {
            std::fs::write(&f, toml).unwrap();
            let e = Settings::load_layers(Some(&f), &[]).unwrap_err().to_string();
            assert!(e.contains(key), "{toml:?}: {e}");
        }
        std::fs::write(&f, "[model]\nfailed_burst = 9\n").unwrap();
        assert!(
            Settings::load_layers(Some(&f), &[]).is_ok(),
            "8 remembered + the current one"
        );
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let env = [("STEPUP_KAFKA_SASL_PASSWORD".to_string(), "hunter2".to_string())];
        let s = Settings::load_layers(None, &env).unwrap();
        assert_eq!(s.kafka["sasl.password"], "hunter2");
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2") && shown.contains("<redacted>"), "{shown}");
    }
}
