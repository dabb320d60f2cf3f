//! Latency histogram with log-linear buckets, in the spirit of HdrHistogram: values below 128
//! are exact, above that each power of two is split into 128 buckets, so every recorded value
//! is known to within 1/128 (0.8 %). Recording is an index computation and an increment, with
//! no allocation, which is what a per-message path can afford; histograms of different
//! subscribers are merged at the end.

/// Sub-buckets per power of two, and the limit below which values are exact.
const SUB: u64 = 128;
const SUB_BITS: u32 = 7;
/// Values are `u32` (µs on the tool's clock): powers 7..=31 above the exact range.
const BUCKETS: usize = (SUB + (32 - SUB_BITS as u64) * SUB) as usize;

#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    sum: u64,
    min: u32,
    max: u32,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// What the reports print.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub min: u32,
    pub p50: u32,
    pub p90: u32,
    pub p99: u32,
    pub p999: u32,
    pub max: u32,
    pub mean: f64,
}

fn index(v: u32) -> usize {
    let v = u64::from(v);
    if v < SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = msb - SUB_BITS;
    let mantissa = v >> shift; // in [SUB, 2 * SUB)
    (SUB + u64::from(shift) * SUB + (mantissa - SUB)) as usize
}

/// The largest value that lands in bucket `i`.
fn upper(i: usize) -> u32 {
    let i = i as u64;
    if i < SUB {
        return i as u32;
    }
    let shift = (i - SUB) / SUB;
    let mantissa = (i - SUB) % SUB + SUB;
    (((mantissa + 1) << shift) - 1).min(u64::from(u32::MAX)) as u32
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum: 0,
            min: u32::MAX,
            max: 0,
        }
    }

    pub fn record(&mut self, v: u32) {
        self.counts[index(v)] += 1;
        self.count += 1;
        self.sum += u64::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            *a += b;
        }
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value at quantile `q` (0..=1): the smallest recorded value such that at least
    /// `q` of all values are at or below it, rounded up to its bucket's upper end (never
    /// above the true maximum). 0 when empty.
    pub fn quantile(&self, q: f64) -> u32 {
        if self.count == 0 {
            return 0;
        }
        // Rank of the wanted value, 1-based: ceil(q * n), at least the first value.
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).clamp(self.min, self.max);
            }
        }
        self.max
    }

    pub fn summary(&self) -> Summary {
        if self.count == 0 {
            return Summary::default();
        }
        Summary {
            count: self.count,
            min: self.min,
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max,
            mean: self.sum as f64 / self.count as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), 50);
        assert_eq!(h.quantile(0.99), 99);
        assert_eq!(h.quantile(1.0), 100);
        assert_eq!(h.quantile(0.0), 1);
        let s = h.summary();
        assert_eq!((s.min, s.max, s.count), (1, 100, 100));
        assert!((s.mean - 50.5).abs() < 1e-9);
    }

    #[test]
    fn nearest_rank() {
        // 1000 values: 990 of 10 µs and 10 of 5000 µs. p99 is the 990th value, p99.9 the 999th.
        let mut h = Histogram::new();
        for _ in 0..990 {
            h.record(10);
        }
        for _ in 0..10 {
            h.record(5000);
        }
        assert_eq!(h.quantile(0.99), 10);
        let p999 = h.quantile(0.999);
        assert_eq!(p999, 5000, "clamped to the true maximum");
    }

    #[test]
    fn relative_error_is_bounded() {
        for v in [
            128u32,
            129,
            255,
            256,
            1000,
            12_345,
            999_999,
            4_000_000_000,
            u32::MAX,
        ] {
            let mut h = Histogram::new();
            h.record(1);
            h.record(v);
            // The bucket's upper end, not clamped (the max is v itself, so ask for p50 of
            // two copies instead).
            let up = upper(index(v));
            assert!(up >= v, "{v}: upper {up}");
            assert!(
                (up - v) as f64 <= v as f64 / 128.0,
                "{v}: upper {up} too far"
            );
        }
    }

    #[test]
    fn index_is_monotonic_and_in_range() {
        let mut last = 0;
        let mut v: u64 = 0;
        while v <= u64::from(u32::MAX) {
            let i = index(v as u32);
            assert!(i >= last && i < BUCKETS);
            assert!(upper(i) as u64 >= v);
            last = i;
            v = v * 11 / 10 + 1;
        }
        assert_eq!(index(u32::MAX), BUCKETS - 1);
    }

    #[test]
    fn merge_adds() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for v in 0..50 {
            a.record(v);
        }
        for v in 50..100 {
            b.record(v);
        }
        a.merge(&b);
        assert_eq!(a.count(), 100);
        assert_eq!(a.quantile(0.5), 49);
        assert_eq!(a.summary().min, 0);
        assert_eq!(a.summary().max, 99);
        // Merging an empty histogram changes nothing.
        a.merge(&Histogram::new());
        assert_eq!(a.summary().min, 0);
    }

    #[test]
    fn empty() {
        let h = Histogram::new();
        assert_eq!(h.quantile(0.5), 0);
        assert_eq!(h.summary(), Summary::default());
    }
}
