//! Topic checks at start: the topics `run` needs exist (missing ones are created
//! with the configured partition count, the registry and changelog compacted,
//! unless creation is disabled); existing topics are never altered. The changelog
//! must have as many partitions as the events topic, since restore of input
//! partition `p` reads changelog partition `p`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::config::Settings;

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("cannot reach the Kafka cluster ({bootstrap}) to read topic metadata: {source}")]
    Unreachable {
        bootstrap: String,
        source: rdkafka::error::KafkaError,
    },
    #[error(
        "topic {0:?} does not exist and topic creation is disabled (--no-create-topics / worker.create_topics = false)"
    )]
    Missing(String),
    #[error("cannot create topic {topic:?}: {reason}")]
    Create { topic: String, reason: String },
    #[error(
        "changelog topic {changelog:?} has {changelog_partitions} partitions but events topic {events:?} has \
         {events_partitions}: restore reads changelog partition p for input partition p, so they must match \
         (recreate the changelog with {events_partitions} partitions)"
    )]
    PartitionMismatch {
        changelog: String,
        changelog_partitions: usize,
        events: String,
        events_partitions: usize,
    },
    #[error("cannot create the admin client: {0}")]
    Client(rdkafka::error::KafkaError),
}

/// A topic the worker needs.
pub struct Needed {
    pub name: String,
    pub compacted: bool,
}

pub fn needed(s: &Settings) -> Vec<Needed> {
    let t = &s.topics;
    let mut v = vec![
        Needed {
            name: t.events.clone(),
            compacted: false,
        },
        Needed {
            name: t.contractors.clone(),
            compacted: true,
        },
        Needed {
            name: t.triggers.clone(),
            compacted: false,
        },
        Needed {
            name: t.dlq.clone(),
            compacted: false,
        },
        Needed {
            name: t.changelog.clone(),
            compacted: true,
        },
    ];
    if s.worker.publish_decisions {
        v.push(Needed {
            name: t.decisions.clone(),
            compacted: false,
        });
    }
    v
}

/// Partition counts of existing topics.
fn partition_counts(
    admin: &AdminClient<DefaultClientContext>,
    timeout: Duration,
) -> Result<BTreeMap<String, usize>, rdkafka::error::KafkaError> {
    let md = admin.inner().fetch_metadata(None, timeout)?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect())
}

/// Make sure every needed topic exists; returns the events topic's partition count.
/// Waits (retrying) up to `connect_timeout` for the cluster to answer.
pub fn ensure(s: &Settings, admin_config: &ClientConfig, connect_timeout: Duration) -> Result<usize, TopicError> {
    let admin: AdminClient<DefaultClientContext> = admin_config.create().map_err(TopicError::Client)?;
    let t0 = Instant::now();
    let mut existing = loop {
        match partition_counts(&admin, Duration::from_secs(5)) {
            Ok(m) => break m,
            Err(e) if t0.elapsed() >= connect_timeout => {
                return Err(TopicError::Unreachable {
                    bootstrap: s.kafka.get("bootstrap.servers").cloned().unwrap_or_default(),
                    source: e,
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "cluster metadata unavailable; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    };
    let missing: Vec<Needed> = needed(s)
        .into_iter()
        .filter(|n| !existing.contains_key(&n.name))
        .collect();
    if !missing.is_empty() {
        if !s.worker.create_topics {
            return Err(TopicError::Missing(missing[0].name.clone()));
        }
        let parts = s.worker.partitions;
        // the changelog must follow the events topic when only one of them exists
        let events_parts = existing.get(&s.topics.events).copied();
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|n| {
                let p = if n.name == s.topics.changelog {
                    events_parts.map_or(parts, |e| e as i32)
                } else {
                    parts
                };
                let t = NewTopic::new(&n.name, p, TopicReplication::Fixed(s.worker.replication_factor));
                if n.compacted {
                    t.set("cleanup.policy", "compact")
                } else {
                    t
                }
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results =
            futures::executor::block_on(admin.create_topics(new.iter(), &opts)).map_err(|e| TopicError::Create {
                topic: missing[0].name.clone(),
                reason: e.to_string(),
            })?;
        for r in results {
            match r {
                Ok(name) => {
                    let n = missing.iter().find(|m| m.name == name);
                    tracing::info!(
                        topic = %name,
                        partitions = parts,
                        replication_factor = s.worker.replication_factor,
                        compacted = n.is_some_and(|n| n.compacted),
                        "topic created"
                    );
                }
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    tracing::info!(topic = %name, "topic already exists (created concurrently)");
                }
                Err((name, code)) => {
                    return Err(TopicError::Create {
                        topic: name,
                        reason: code.to_string(),
                    })
                }
            }
        }
        // wait until metadata shows them
        let t1 = Instant::now();
        loop {
            existing = partition_counts(&admin, Duration::from_secs(5)).map_err(|e| TopicError::Unreachable {
                bootstrap: s.kafka.get("bootstrap.servers").cloned().unwrap_or_default(),
                source: e,
            })?;
            if missing.iter().all(|m| existing.contains_key(&m.name)) {
                break;
            }
            if t1.elapsed() > Duration::from_secs(30) {
                let m = missing
                    .iter()
                    .find(|m| !existing.contains_key(&m.name))
                    .expect("one is missing");
                return Err(TopicError::Create {
                    topic: m.name.clone(),
                    reason: "created but not visible in metadata after 30 s".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let events = existing[&s.topics.events];
    let changelog = existing[&s.topics.changelog];
    if events != changelog {
        return Err(TopicError::PartitionMismatch {
            changelog: s.topics.changelog.clone(),
            changelog_partitions: changelog,
            events: s.topics.events.clone(),
            events_partitions: events,
        });
    }
    Ok(events)
}
