//! Bounded histograms, and the form they take in the JSON report.

use hdrhistogram::Histogram;
use serde::{Serialize, Serializer};

use super::{LATENCY_BUCKETS_US, SIZE_BUCKETS};

/// A bounded histogram of microseconds or bytes, with its count, extremes and sum kept
/// exactly beside the buckets: a single value reads as itself, and no percentile lies
/// outside what was recorded.
#[derive(Debug, Clone)]
pub struct Hist {
    h: Histogram<u64>,
    buckets: &'static [u64],
    /// The largest value accepted (larger ones are recorded as it).
    high: u64,
    min: u64,
    max: u64,
    sum: u128,
}

/// The largest latency or interval recorded: one hour, in µs.
const MAX_MICROS: u64 = 3_600_000_000;

impl Hist {
    /// Microseconds, 1 µs to 1 hour, at 3 significant digits. The buckets grow with the
    /// largest value seen, so a histogram of sub-second latencies stays small.
    pub fn micros() -> Hist {
        let mut h = Histogram::new_with_bounds(1, 1 << 12, 3).expect("valid bounds");
        h.auto(true);
        Hist::of(h, LATENCY_BUCKETS_US, MAX_MICROS)
    }

    /// Bytes, 1 B to 1 TiB, at 2 significant digits (sizes are compared in powers of two).
    pub fn bytes() -> Hist {
        let h = Histogram::new_with_bounds(1, 1 << 40, 2).expect("valid bounds");
        Hist::of(h, SIZE_BUCKETS, 1 << 40)
    }

    fn of(h: Histogram<u64>, buckets: &'static [u64], high: u64) -> Hist {
        Hist {
            h,
            buckets,
            high,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    /// Records one value (clamped into the bounds).
    pub fn record(&mut self, v: u64) {
        self.record_n(v, 1);
    }

    /// Records `n` equal values.
    pub fn record_n(&mut self, v: u64, n: u64) {
        if n == 0 {
            return;
        }
        let v = v.clamp(1, self.high);
        if self.h.record_n(v, n).is_err() {
            return;
        }
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += u128::from(v) * u128::from(n);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.h.len()
    }

    /// The value at quantile `q` (0..=1), within the smallest and largest recorded; 0 when
    /// empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.h.is_empty() {
            0
        } else {
            self.h.value_at_quantile(q).clamp(self.min, self.max)
        }
    }

    /// The smallest value recorded, exactly; 0 when empty.
    pub fn min(&self) -> u64 {
        if self.h.is_empty() {
            0
        } else {
            self.min
        }
    }

    /// The largest value recorded, exactly; 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Sum of the values, exactly.
    pub fn sum(&self) -> f64 {
        self.sum as f64
    }

    /// The mean, exactly; 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.h.is_empty() {
            0.0
        } else {
            self.sum as f64 / self.h.len() as f64
        }
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
        if other.h.is_empty() || self.h.add(&other.h).is_err() {
            return;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }
}

/// How a histogram appears in the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct HistSummary {
    /// Values recorded.
    pub count: u64,
    /// Smallest, exactly.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest, exactly.
    pub max: u64,
    /// Mean, exactly.
    pub mean: f64,
    /// Cumulative counts at fixed upper bounds: `[[le, count], …]`.
    pub buckets: Vec<(u64, u64)>,
}

impl Serialize for Hist {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        HistSummary {
            count: self.count(),
            min: self.min(),
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max(),
            mean: self.mean(),
            buckets: self.cumulative(),
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::Hist;

    /// The extremes are the values recorded, not their buckets' bounds; a single value reads
    /// as itself at every percentile; no percentile lies outside them.
    #[test]
    fn extremes_are_exact_and_percentiles_stay_within_them() {
        let mut h = Hist::micros();
        h.record(10_032_300);
        assert_eq!((h.min(), h.max()), (10_032_300, 10_032_300));
        assert_eq!(h.quantile(0.5), 10_032_300, "a single value is itself");
        for v in [522_600, 4_231, 4_300, 4_250] {
            h.record(v);
        }
        assert_eq!((h.count(), h.min(), h.max()), (5, 4_231, 10_032_300));
        assert_eq!(
            h.mean(),
            (10_032_300 + 522_600 + 4_231 + 4_300 + 4_250) as f64 / 5.0
        );
        for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
            let p = h.quantile(q);
            assert!((h.min()..=h.max()).contains(&p), "p{q} = {p}");
        }
        // 3 significant digits: the median is within 0.1 % of the true one (4 300 µs).
        assert!(h.quantile(0.5).abs_diff(4_300) <= 5, "{}", h.quantile(0.5));
        let mut sum = Hist::micros();
        sum.add(&h);
        assert_eq!((sum.count(), sum.min(), sum.max()), (5, 4_231, 10_032_300));
    }
}
