//! The embedded store's group commit in `/metrics`, read from
//! [`RedbStore::commit_stats`] at each scrape:
//!
//! - `tessera_store_writes_per_commit{store}`: a histogram of the writes each commit made
//!   durable (`_count`: commits, `_sum`: writes), by store (`session`, `anonymous`);
//! - `tessera_store_commit_duration_seconds{store}`: a histogram of how long each commit took
//!   (mostly its fsyncs: what bounds a durable write's latency), by store;
//! - `tessera_store_failed_transactions_total{store}`: write transactions that did not commit.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use tessera_store_redb::{BATCH_SIZE_BUCKETS, COMMIT_MICROS_BUCKETS, RedbStore};

/// The redb stores of the service, each with its `store` label.
#[derive(Debug, Clone, Default)]
pub(crate) struct CommitMetrics(pub(crate) Vec<(&'static str, Arc<RedbStore>)>);

impl Collector for CommitMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats: Vec<_> = self
            .0
            .iter()
            .map(|(store, s)| (*store, s.commit_stats()))
            .collect();
        let mut family = encoder.encode_descriptor(
            "tessera_store_writes_per_commit",
            "Writes made durable by each commit of the embedded store (group commit), by store",
            None,
            MetricType::Histogram,
        )?;
        for (store, s) in &stats {
            let buckets: Vec<(f64, u64)> = BATCH_SIZE_BUCKETS
                .iter()
                .zip(s.commits_by_size)
                .map(|(bound, n)| (*bound as f64, n))
                .chain([(f64::INFINITY, 0)])
                .collect();
            family
                .encode_family(&[("store", *store)])?
                .encode_histogram::<NoLabelSet>(s.writes as f64, s.commits, &buckets, None)?;
        }
        let mut family = encoder.encode_descriptor(
            "tessera_store_commit_duration_seconds",
            "How long each commit of the embedded store took (its fsyncs, mostly), by store",
            None,
            MetricType::Histogram,
        )?;
        for (store, s) in &stats {
            let buckets: Vec<(f64, u64)> = COMMIT_MICROS_BUCKETS
                .iter()
                .zip(s.commits_by_duration)
                .map(|(&bound, n)| match bound {
                    u64::MAX => (f64::INFINITY, n),
                    micros => (micros as f64 / 1e6, n),
                })
                .collect();
            family
                .encode_family(&[("store", *store)])?
                .encode_histogram::<NoLabelSet>(
                    s.commit_micros as f64 / 1e6,
                    s.commits,
                    &buckets,
                    None,
                )?;
        }
        let mut family = encoder.encode_descriptor(
            "tessera_store_failed_transactions",
            "Write transactions of the embedded store that did not commit (a write in them \
             failed, or the commit did), by store",
            None,
            MetricType::Counter,
        )?;
        for (store, s) in &stats {
            ConstCounter::new(s.failed_transactions)
                .encode(family.encode_family(&[("store", *store)])?)?;
        }
        Ok(())
    }
}
