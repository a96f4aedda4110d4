//! The outputs: one idempotent producer shared by every partition worker, and the
//! record layouts of the trigger, decision, dead-letter and changelog topics.
//!
//! Every send carries an [`AckEntry`] as its delivery opaque; the delivery callback
//! releases it, which is what lets an input offset be committed (see [`super::offsets`]).

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use sha2::Sha256;

use super::offsets::AckEntry;
use super::Status;
use crate::decision::DecisionKind;
use crate::metrics::{Metrics, ProducerFailed};
use crate::pipeline::Output;
use crate::timefmt::write_rfc3339_ms;

pub type Producer = ThreadedProducer<SinkContext>;

/// Producer callbacks: delivery reports release acknowledgements; a failed delivery
/// stops its partition's commit prefix and makes the worker exit non-zero.
pub struct SinkContext {
    pub metrics: Arc<Metrics>,
    pub status: Arc<Status>,
    /// Acknowledged changelog offsets are noted on the partition's tracker.
    pub changelog_topic: String,
}

impl ClientContext for SinkContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal)) {
            self.status
                .set_fatal(format!("producer fatal error: {error}: {reason}"));
        }
        tracing::warn!(%error, reason, "producer error");
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = Arc<AckEntry>;

    fn delivery(&self, result: &DeliveryResult<'_>, entry: Arc<AckEntry>) {
        match result {
            Ok(m) => {
                if let Some(t) = entry.tracker() {
                    if m.topic() == self.changelog_topic {
                        t.note_changelog(m.offset());
                    }
                }
                entry.ack()
            }
            Err((e, msg)) => {
                let code = e
                    .rdkafka_error_code()
                    .map(|c| format!("{c:?}"))
                    .unwrap_or_else(|| "unknown".into());
                let topic = msg.topic().to_string();
                self.metrics.emit(ProducerFailed {
                    code: &code,
                    topic: &topic,
                    error: &e.to_string(),
                });
                // Never release: the input offset stays uncommitted. The worker stops
                // and exits non-zero; a restart re-reads from the last committed offset.
                if let Some(t) = entry.tracker() {
                    t.mark_failed();
                }
                self.status.set_fatal(format!(
                    "delivery to topic {topic} failed: {e}; stopping so that a restart re-processes \
                     from the last committed offset"
                ));
            }
        }
    }
}

/// Topic names and output options.
/// Largest payload / key written to the dead-letter topic (well under librdkafka's
/// default `message.max.bytes` of 1,000,000 with headers).
pub const DLQ_MAX_PAYLOAD: usize = 256 * 1024;
pub const DLQ_MAX_KEY: usize = 1024;

#[derive(Clone)]
pub struct SinkConfig {
    pub triggers: String,
    pub decisions: Option<String>,
    pub dlq: String,
    pub changelog: String,
    pub signing_key: Option<Arc<Vec<u8>>>,
    /// CloudEvents binary-mode `ce_*` headers on triggers and decisions.
    pub cloudevents: bool,
}

/// Writes outputs for one partition worker (scratch buffers are per worker).
pub struct Sinks {
    producer: Arc<Producer>,
    cfg: SinkConfig,
    mac: Option<Hmac<Sha256>>,
    time_buf: Vec<u8>,
    sig_buf: String,
    stop: Option<Arc<std::sync::atomic::AtomicBool>>,
}

pub const CONTENT_TYPE_JSON: &[u8] = b"application/json";

impl Sinks {
    pub fn new(producer: Arc<Producer>, cfg: SinkConfig) -> Self {
        let mac = cfg
            .signing_key
            .as_ref()
            .map(|k| Hmac::<Sha256>::new_from_slice(k).expect("HMAC accepts any key length"));
        Sinks {
            producer,
            cfg,
            mac,
            time_buf: Vec::with_capacity(32),
            sig_buf: String::with_capacity(72),
            stop: None,
        }
    }

    /// Give up retrying a full queue once this flag is set (partition revoked).
    pub fn with_stop(mut self, stop: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    pub fn publish_decisions(&self) -> bool {
        self.cfg.decisions.is_some()
    }

    /// Hand a record to the producer, retrying while its queue is full. An error
    /// other than a full queue (or a full queue after the partition was revoked)
    /// leaves the entry unreleased: its offset is never committed.
    fn send(&self, mut rec: BaseRecord<'_, [u8], [u8], Arc<AckEntry>>) -> Result<(), KafkaError> {
        rec.delivery_opaque.add();
        let mut backoff = Duration::from_micros(200);
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    if self
                        .stop
                        .as_ref()
                        .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
                    {
                        return Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull));
                    }
                    rec = r;
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                }
                Err((e, _r)) => return Err(e),
            }
        }
    }

    /// `content-type`, plus the CloudEvents binary-mode headers when configured
    /// (`ce_id` = `event_id`, the idempotency key, which the payload always
    /// carries). Headers are kept few on purpose: tansu 0.6.0's SQLite store
    /// spends more on a header than on the record carrying it.
    fn headers(&mut self, out: &Output, ce_type: &str, n_extra: usize) -> OwnedHeaders {
        let h = OwnedHeaders::new_with_capacity(if self.cfg.cloudevents { 7 } else { 1 } + n_extra).insert(Header {
            key: "content-type",
            value: Some(CONTENT_TYPE_JSON),
        });
        if !self.cfg.cloudevents {
            return h;
        }
        self.time_buf.clear();
        write_rfc3339_ms(&mut self.time_buf, out.time_ms);
        h.insert(Header {
            key: "ce_specversion",
            value: Some(b"1.0".as_slice()),
        })
        .insert(Header {
            key: "ce_id",
            value: Some(out.event_id.as_bytes()),
        })
        .insert(Header {
            key: "ce_type",
            value: Some(ce_type.as_bytes()),
        })
        .insert(Header {
            key: "ce_source",
            value: Some(b"stepup".as_slice()),
        })
        .insert(Header {
            key: "ce_subject",
            value: Some(out.user_id.as_bytes()),
        })
        .insert(Header {
            key: "ce_time",
            value: Some(self.time_buf.as_slice()),
        })
    }

    /// A step-up trigger (only for step_up / deny).
    pub fn trigger(&mut self, out: &Output, entry: &Arc<AckEntry>) -> Result<(), KafkaError> {
        let kind = out.kind.unwrap_or(DecisionKind::Allow);
        let ce_type = match kind {
            DecisionKind::Deny => "dev.stepup.trigger.deny",
            _ => "dev.stepup.trigger.step_up",
        };
        let mut headers = self.headers(out, ce_type, 1);
        if let Some(mac) = &self.mac {
            let mut m = mac.clone();
            m.update(&out.json);
            let tag = m.finalize().into_bytes();
            self.sig_buf.clear();
            self.sig_buf.push_str("v1=");
            self.sig_buf.push_str(&hex::encode(tag));
            headers = headers.insert(Header {
                key: "stepup-signature",
                value: Some(self.sig_buf.as_bytes()),
            });
        }
        let rec = BaseRecord::with_opaque_to(&self.cfg.triggers, entry.clone())
            .key(out.user_id.as_bytes())
            .payload(out.json.as_slice())
            .headers(headers);
        self.send(rec)
    }

    /// A decision record (every decision, when enabled).
    pub fn decision(&mut self, out: &Output, entry: &Arc<AckEntry>) -> Result<(), KafkaError> {
        if self.cfg.decisions.is_none() {
            return Ok(());
        }
        // Decisions are the analysts' record: the payload says everything, so the
        // headers are only the CloudEvents ones, when configured.
        let headers = self.cfg.cloudevents.then(|| {
            let ce_type = match out.kind.unwrap_or(DecisionKind::Allow) {
                DecisionKind::Allow => "dev.stepup.decision.allow",
                DecisionKind::StepUp => "dev.stepup.decision.step_up",
                DecisionKind::Deny => "dev.stepup.decision.deny",
            };
            self.headers(out, ce_type, 0)
        });
        let Some(topic) = self.cfg.decisions.as_deref() else {
            return Ok(());
        };
        let mut rec = BaseRecord::with_opaque_to(topic, entry.clone())
            .key(out.user_id.as_bytes())
            .payload(out.json.as_slice());
        if let Some(h) = headers {
            rec = rec.headers(h);
        }
        self.send(rec)
    }

    /// The original record, with the reason, to the dead-letter topic.
    #[allow(clippy::too_many_arguments)]
    pub fn dlq(
        &mut self,
        source_topic: &str,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        payload: &[u8],
        code: &str,
        message: &str,
        entry: &Arc<AckEntry>,
    ) -> Result<(), KafkaError> {
        let p = partition.to_string();
        let o = offset.to_string();
        // A record can be too big to dead-letter whole (producer `message.max.bytes`,
        // the DLQ topic's own limit): keep a bounded prefix and say so, rather than
        // fail the delivery and crash-loop on the same offset.
        let original_len = payload.len();
        let payload = &payload[..original_len.min(DLQ_MAX_PAYLOAD)];
        let key = key.map(|k| &k[..k.len().min(DLQ_MAX_KEY)]);
        let original_size = (original_len > DLQ_MAX_PAYLOAD).then(|| original_len.to_string());
        let mut headers = OwnedHeaders::new_with_capacity(7)
            .insert(Header {
                key: "stepup-error",
                value: Some(message.as_bytes()),
            })
            .insert(Header {
                key: "stepup-error-code",
                value: Some(code.as_bytes()),
            })
            .insert(Header {
                key: "stepup-source-topic",
                value: Some(source_topic.as_bytes()),
            })
            .insert(Header {
                key: "stepup-source-partition",
                value: Some(p.as_bytes()),
            })
            .insert(Header {
                key: "stepup-source-offset",
                value: Some(o.as_bytes()),
            });
        if let Some(size) = &original_size {
            headers = headers
                .insert(Header {
                    key: "stepup-truncated",
                    value: Some(b"true".as_slice()),
                })
                .insert(Header {
                    key: "stepup-original-size",
                    value: Some(size.as_bytes()),
                });
        }
        let mut rec = BaseRecord::with_opaque_to(&self.cfg.dlq, entry.clone())
            .payload(payload)
            .headers(headers);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        self.send(rec)
    }

    /// A baseline to the changelog, on the input's partition number (`None` = tombstone).
    pub fn changelog(
        &mut self,
        partition: i32,
        user: &str,
        value: Option<&[u8]>,
        entry: &Arc<AckEntry>,
    ) -> Result<(), KafkaError> {
        let mut rec = BaseRecord::with_opaque_to(&self.cfg.changelog, entry.clone())
            .key(user.as_bytes())
            .partition(partition);
        if let Some(v) = value {
            rec = rec.payload(v);
        }
        self.send(rec)
    }
}
