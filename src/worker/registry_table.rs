//! The `contractors` topic read as a table: every partition from the beginning,
//! caught up to the end before the worker scores anything, then followed live.
//!
//! The master copy lives here; each partition worker owns its own copy inside its
//! [`Pipeline`] (no locks in the hot path) and drains a channel of updates before
//! each batch. Subscribing copies the master and registers the channel under one
//! lock, so a new partition worker misses no update and sees none twice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::offsets::AckEntry;
use super::sinks::Sinks;
use super::Status;
use crate::contractors::{Contractor, Registry};
use crate::metrics::{DeadLettered, Metrics, RegistryUpdated};
use crate::pipeline::Pipeline;

/// One registry change.
pub struct Update {
    pub user: Box<str>,
    pub contractor: Option<Contractor>,
}

struct Inner {
    master: Registry,
    subs: Vec<Sender<Arc<Update>>>,
}

/// The registry table shared by the partition workers of one process.
pub struct Table {
    inner: Mutex<Inner>,
    caught_up: AtomicBool,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            inner: Mutex::new(Inner {
                master: Registry::default(),
                subs: Vec::new(),
            }),
            caught_up: AtomicBool::new(false),
        }
    }
}

impl Table {
    /// Copy the current registry into `p` and return the channel of later updates.
    pub fn subscribe(&self, p: &mut Pipeline) -> Receiver<Arc<Update>> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *p.registry_mut() = g.master.clone();
        let (tx, rx) = channel();
        g.subs.push(tx);
        rx
    }

    /// Apply one change to the master and broadcast it; returns the table size.
    pub fn apply(&self, u: Update) -> usize {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match &u.contractor {
            Some(c) => g.master.upsert(c.clone()),
            None => g.master.remove(&u.user),
        }
        let u = Arc::new(u);
        g.subs.retain(|s| s.send(u.clone()).is_ok());
        g.master.len()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).master.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }
}

/// Apply pending registry updates to a partition's pipeline (before its next batch).
pub fn drain_updates(rx: &Receiver<Arc<Update>>, p: &mut Pipeline) -> usize {
    let mut n = 0;
    while let Ok(u) = rx.try_recv() {
        p.upsert_contractor(&u.user, u.contractor.clone());
        n += 1;
    }
    n
}

/// Everything the table thread needs.
pub struct TableTask {
    pub table: Arc<Table>,
    pub config: ClientConfig,
    pub topic: String,
    pub sinks: Sinks,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Status>,
    pub stop: Arc<AtomicBool>,
}

/// Decode one registry record into an update, or a (code, message) for the DLQ.
pub fn decode_record(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Update, (&'static str, String)> {
    let key = match key {
        None => None,
        Some(k) => Some(
            std::str::from_utf8(k)
                .map_err(|_| ("registry_bad_key", "record key is not UTF-8".to_string()))?
                .to_string(),
        ),
    };
    match value {
        None => match key {
            Some(k) if !k.is_empty() => Ok(Update {
                user: k.into_boxed_str(),
                contractor: None,
            }),
            _ => Err((
                "registry_tombstone_without_key",
                "tombstone without a user_id key".to_string(),
            )),
        },
        Some(v) => {
            let c = Contractor::parse(v).map_err(|e| ("registry_invalid", e.to_string()))?;
            if let Some(k) = &key {
                if !k.is_empty() && *k != c.user_id {
                    return Err((
                        "registry_key_mismatch",
                        format!("record key {k:?} differs from user_id {:?}", c.user_id),
                    ));
                }
            }
            Ok(Update {
                user: c.user_id.clone().into_boxed_str(),
                contractor: Some(c),
            })
        }
    }
}

impl TableTask {
    /// Read the table to its end, flag it caught up, then follow it until `stop`.
    pub fn run(mut self) {
        let span = tracing::info_span!("registry", topic = %self.topic);
        let _g = span.enter();
        let consumer: BaseConsumer<super::ReaderContext> = match self.config.create_with_context(super::ReaderContext) {
            Ok(c) => c,
            Err(e) => {
                self.status.set_fatal(format!("cannot create registry consumer: {e}"));
                return;
            }
        };
        let started = Instant::now();
        // partitions and end offsets at start
        let (mut pending, parts) = loop {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            match self.targets(&consumer) {
                Ok(t) => break t,
                Err(e) => {
                    tracing::warn!(error = %e, "registry topic not readable yet; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        };
        let mut tpl = TopicPartitionList::new();
        for p in 0..parts {
            let _ = tpl.add_partition_offset(&self.topic, p, Offset::Beginning);
        }
        if let Err(e) = consumer.assign(&tpl) {
            self.status.set_fatal(format!("cannot assign registry partitions: {e}"));
            return;
        }
        let mut records = 0u64;
        let mut rejected = 0u64;
        let mut announced = false;
        while !self.stop.load(Ordering::Relaxed) {
            if !announced && pending.iter().all(|t| t.is_none()) {
                announced = true;
                self.table.caught_up.store(true, Ordering::Release);
                tracing::info!(
                    contractors = self.table.len(),
                    records,
                    rejected,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "registry caught up"
                );
            }
            match consumer.poll(Duration::from_millis(200)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    if let Some(t) = pending.get_mut(p as usize) {
                        *t = None;
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "registry consumer error"),
                Some(Ok(m)) => {
                    records += 1;
                    let p = m.partition() as usize;
                    if let Some(Some(end)) = pending.get(p) {
                        if m.offset() + 1 >= *end {
                            pending[p] = None;
                        }
                    }
                    match decode_record(m.key(), m.payload()) {
                        Ok(u) => {
                            let op = if u.contractor.is_some() { "upsert" } else { "delete" };
                            let n = self.table.apply(u);
                            self.metrics.emit(RegistryUpdated { op, contractors: n });
                        }
                        Err((code, msg)) => {
                            rejected += 1;
                            tracing::warn!(
                                partition = m.partition(),
                                offset = m.offset(),
                                code,
                                "bad registry record sent to the DLQ (reason in its stepup-error header)"
                            );
                            self.metrics.emit(RegistryUpdated {
                                op: "rejected",
                                contractors: self.table.len(),
                            });
                            self.metrics.emit(DeadLettered { code });
                            let entry = AckEntry::untracked();
                            if let Err(e) = self.sinks.dlq(
                                &self.topic,
                                m.partition(),
                                m.offset(),
                                m.key(),
                                m.payload().unwrap_or_default(),
                                code,
                                &msg,
                                &entry,
                            ) {
                                tracing::error!(error = %e, "cannot send bad registry record to the DLQ");
                            }
                            entry.release();
                        }
                    }
                }
            }
        }
    }

    /// Per partition: `Some(high watermark)` while not caught up.
    fn targets(&self, consumer: &BaseConsumer<super::ReaderContext>) -> Result<(Vec<Option<i64>>, i32), KafkaError> {
        let md = consumer.fetch_metadata(Some(&self.topic), Duration::from_secs(5))?;
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == self.topic)
            .ok_or(KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::UnknownTopic,
            ))?;
        if let Some(e) = t.error() {
            return Err(KafkaError::MetadataFetch(e.into()));
        }
        let parts = t.partitions().len() as i32;
        let mut v = Vec::with_capacity(parts as usize);
        for p in 0..parts {
            let (low, high) = consumer.fetch_watermarks(&self.topic, p, Duration::from_secs(5))?;
            v.push((high > low).then_some(high));
        }
        Ok((v, parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_upserts_deletes_and_rejects() {
        let u = decode_record(Some(b"u1"), Some(br#"{"user_id":"u1","contract_end":"2026-01-01"}"#)).unwrap();
        assert_eq!(&*u.user, "u1");
        assert!(u.contractor.is_some());
        let d = decode_record(Some(b"u1"), None).unwrap();
        assert!(d.contractor.is_none());
        assert_eq!(
            decode_record(None, None).err().unwrap().0,
            "registry_tombstone_without_key"
        );
        assert_eq!(
            decode_record(Some(b"u2"), Some(b"{}")).err().unwrap().0,
            "registry_invalid"
        );
        assert_eq!(
            decode_record(Some(b"u2"), Some(br#"{"user_id":"u1"}"#))
                .err()
                .unwrap()
                .0,
            "registry_key_mismatch"
        );
    }
}
