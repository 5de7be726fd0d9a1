//! Bounded histograms, and the form they take in the JSON report.

use hdrhistogram::Histogram;
use serde::{Serialize, Serializer};

use super::{LATENCY_BUCKETS_US, SIZE_BUCKETS};

/// A bounded histogram of microseconds or bytes.
#[derive(Debug, Clone)]
pub struct Hist {
    h: Histogram<u64>,
    buckets: &'static [u64],
}

impl Hist {
    /// Microseconds, 1 µs to 1 hour.
    pub fn micros() -> Hist {
        Hist {
            h: Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid bounds"),
            buckets: LATENCY_BUCKETS_US,
        }
    }

    /// Bytes, 1 B to 1 TiB.
    pub fn bytes() -> Hist {
        Hist {
            h: Histogram::new_with_bounds(1, 1 << 40, 2).expect("valid bounds"),
            buckets: SIZE_BUCKETS,
        }
    }

    /// Records one value (clamped into the bounds).
    pub fn record(&mut self, v: u64) {
        self.h.saturating_record(v.max(1));
    }

    /// Records `n` equal values.
    pub fn record_n(&mut self, v: u64, n: u64) {
        let _ = self.h.record_n(v.max(1).min(self.h.high()), n);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.h.len()
    }

    /// The value at quantile `q` (0..=1), 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.h.is_empty() {
            0
        } else {
            self.h.value_at_quantile(q)
        }
    }

    /// The largest value recorded, 0 when empty.
    pub fn max(&self) -> u64 {
        if self.h.is_empty() {
            0
        } else {
            self.h.max()
        }
    }

    /// Sum of the values (approximate: each value counts as its bucket's equivalent).
    pub fn sum(&self) -> f64 {
        self.h.mean() * self.h.len() as f64
    }

    /// `(upper bound, cumulative count)` at each fixed bucket bound.
    pub fn cumulative(&self) -> Vec<(u64, u64)> {
        self.buckets
            .iter()
            .map(|&le| {
                (
                    le,
                    if self.h.is_empty() {
                        0
                    } else {
                        self.h.count_between(0, le)
                    },
                )
            })
            .collect()
    }

    /// Adds another histogram of the same kind.
    pub fn add(&mut self, other: &Hist) {
        let _ = self.h.add(&other.h);
    }
}

/// How a histogram appears in the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct HistSummary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
    /// Cumulative counts at fixed upper bounds: `[[le, count], …]`.
    pub buckets: Vec<(u64, u64)>,
}

impl Serialize for Hist {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        HistSummary {
            count: self.count(),
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max(),
            mean: if self.h.is_empty() {
                0.0
            } else {
                self.h.mean()
            },
            buckets: self.cumulative(),
        }
        .serialize(s)
    }
}
