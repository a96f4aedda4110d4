//! stepup: event-driven step-up authentication risk scoring.
//!
//! Data flows one way: **source → decode → enrich → baseline + score → decide → sinks**.
//!
//! The hot path ([`pipeline::Pipeline::process`]) is synchronous and free of I/O:
//! [`event`] decodes, [`enrich`] adds geo/ASN/user-agent facts, [`baseline`] holds the
//! per-contractor history, [`model`] scores, [`policy`] + [`decision`] decide and encode.
//! The edges ([`cli`] for files, [`worker`] for Kafka) call it.

pub mod baseline;
pub mod cli;
pub mod config;
pub mod contractors;
pub mod decision;
pub mod enrich;
pub mod eval;
pub mod event;
pub mod gen;
pub mod geo_fixture;
pub mod hash;
pub mod http;
pub mod metrics;
pub mod mmdb;
pub mod model;
pub mod pipeline;
pub mod policy;
pub mod timefmt;
pub mod worker;
