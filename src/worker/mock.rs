//! An in-process Kafka-protocol cluster (librdkafka's mock cluster,
//! [`rdkafka::mocking::MockCluster`]) for `stepup demo` and the tests: real
//! sockets and the real protocol (consumer groups, idempotent producer, offset
//! commits), no broker to install. It does not implement CreateTopics, so topics
//! are created through the mock API; the worker then finds them in metadata and
//! creates nothing (the same code path as against a real cluster).

use rdkafka::client::Client;
use rdkafka::error::KafkaResult;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::ClientConfig;

use crate::config::Topics;

/// A mock cluster owned by a small client handle.
pub struct MockKafka {
    handle: BaseProducer,
    bootstrap: String,
}

impl MockKafka {
    /// Start a cluster of `brokers` brokers.
    pub fn start(brokers: i32) -> KafkaResult<Self> {
        let handle: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", brokers.to_string())
            .set("log_level", "3")
            .create()?;
        let bootstrap = handle.client().mock_cluster().map(|m| m.bootstrap_servers()).ok_or(
            rdkafka::error::KafkaError::MockCluster(rdkafka::types::RDKafkaErrorCode::Fail),
        )?;
        let m = MockKafka { handle, bootstrap };
        // the mock waits 3 s before the first group assignment (like
        // group.initial.rebalance.delay.ms); make it quick
        m.set_initial_rebalance_delay_ms(100);
        Ok(m)
    }

    fn client(&self) -> &Client<rdkafka::producer::DefaultProducerContext> {
        self.handle.client()
    }

    fn raw(&self) -> *mut rdkafka::bindings::rd_kafka_mock_cluster_t {
        // SAFETY: the handle was created with test.mock.num.brokers, so it owns a mock
        // cluster that lives as long as the handle (and so as long as `self`).
        unsafe { rdkafka::bindings::rd_kafka_handle_mock_cluster(self.client().native_ptr()) }
    }

    pub fn set_initial_rebalance_delay_ms(&self, ms: i32) {
        let raw = self.raw();
        if !raw.is_null() {
            // SAFETY: `raw` is the live mock cluster of our handle.
            unsafe { rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(raw, ms) };
        }
    }

    fn cluster(&self) -> MockCluster<'_, rdkafka::producer::DefaultProducerContext> {
        self.client()
            .mock_cluster()
            .expect("created with test.mock.num.brokers")
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    pub fn create_topic(&self, name: &str, partitions: i32) -> KafkaResult<()> {
        self.cluster().create_topic(name, partitions, 1)
    }

    /// Create every topic the worker uses (the mock has no compaction).
    pub fn create_worker_topics(&self, t: &Topics, partitions: i32) -> KafkaResult<()> {
        for name in [
            &t.events,
            &t.contractors,
            &t.triggers,
            &t.decisions,
            &t.dlq,
            &t.changelog,
        ] {
            self.create_topic(name, partitions)?;
        }
        Ok(())
    }

    pub fn broker_down(&self, broker_id: i32) -> KafkaResult<()> {
        self.cluster().broker_down(broker_id)
    }

    pub fn broker_up(&self, broker_id: i32) -> KafkaResult<()> {
        self.cluster().broker_up(broker_id)
    }

    /// Fail the next requests of `api` with these errors, in order (fault injection).
    pub fn request_errors(&self, api: rdkafka::types::RDKafkaApiKey, errors: &[rdkafka::types::RDKafkaRespErr]) {
        self.cluster().request_errors(api, errors)
    }

    /// Keep the handle quiet about the cluster it owns.
    pub fn flush(&self) {
        let _ = self.handle.flush(std::time::Duration::from_millis(10));
    }
}
