//! Restore of one partition's baselines from its changelog partition (Kafka Streams
//! style): a non-group consumer reads changelog partition `p` from the beginning to
//! the high watermark observed at start; each record replaces its user's baseline,
//! a tombstone removes it. Runs before any event of input partition `p` is scored.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::pipeline::Pipeline;

#[derive(Debug, Default, Clone, Copy)]
pub struct RestoreStats {
    pub records: u64,
    pub errors: u64,
    pub users: usize,
    pub duration: Duration,
    /// The changelog partition's high watermark read at start (its next offset).
    pub high: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("restore interrupted (partition revoked or shutting down)")]
    Stopped,
    #[error("cannot create the changelog reader: {0}")]
    Client(KafkaError),
}

/// The changelog partition's current end offset (retrying while unreachable).
pub fn changelog_end(config: &ClientConfig, topic: &str, p: i32, stop: &AtomicBool) -> Result<i64, RestoreError> {
    let consumer: BaseConsumer<super::ReaderContext> = config
        .create_with_context(super::ReaderContext)
        .map_err(RestoreError::Client)?;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(RestoreError::Stopped);
        }
        match consumer.fetch_watermarks(topic, p, Duration::from_secs(5)) {
            Ok((_, high)) => return Ok(high),
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "changelog watermarks unavailable; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// Read changelog partition `p` of `topic` into `pipeline`. Retries while the
/// cluster is unreachable; returns [`RestoreError::Stopped`] when `stop` is set.
pub fn restore_partition(
    config: &ClientConfig,
    topic: &str,
    p: i32,
    pipeline: &mut Pipeline,
    stop: &AtomicBool,
) -> Result<RestoreStats, RestoreError> {
    let t0 = Instant::now();
    let consumer: BaseConsumer<super::ReaderContext> = config
        .create_with_context(super::ReaderContext)
        .map_err(RestoreError::Client)?;
    let (low, high) = loop {
        if stop.load(Ordering::Relaxed) {
            return Err(RestoreError::Stopped);
        }
        match consumer.fetch_watermarks(topic, p, Duration::from_secs(5)) {
            Ok(w) => break w,
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "changelog watermarks unavailable; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    let mut st = RestoreStats {
        high,
        ..RestoreStats::default()
    };
    if high > low {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(RestoreError::Client)?;
        consumer.assign(&tpl).map_err(RestoreError::Client)?;
        let mut last_log = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(RestoreError::Stopped);
            }
            match consumer.poll(Duration::from_millis(200)) {
                None => {
                    if last_log.elapsed() > Duration::from_secs(10) {
                        last_log = Instant::now();
                        tracing::info!(partition = p, records = st.records, high, "restore still running");
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => tracing::debug!(partition = p, error = %e, "changelog reader error"),
                Some(Ok(m)) => {
                    st.records += 1;
                    let off = m.offset();
                    match m.key().map(std::str::from_utf8) {
                        Some(Ok(user)) if !user.is_empty() => {
                            if let Err(e) = pipeline.restore(user, m.payload()) {
                                // the newest record wins, even when it is unusable: forget the
                                // user rather than keep an older version (compaction would)
                                let _ = pipeline.restore(user, None);
                                st.errors += 1;
                                tracing::warn!(partition = p, offset = off, error = %e, "undecodable baseline skipped");
                            }
                        }
                        _ => {
                            st.errors += 1;
                            tracing::warn!(
                                partition = p,
                                offset = off,
                                "changelog record without a UTF-8 key skipped"
                            );
                        }
                    }
                    if off + 1 >= high {
                        break;
                    }
                }
            }
        }
    }
    st.users = pipeline.state().len();
    st.duration = t0.elapsed();
    Ok(st)
}
