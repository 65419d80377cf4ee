//! The statistics of the benchmark tables: median, minimum and maximum of
//! a figure over runs, and nearest-rank percentiles of timed requests. The
//! load generator computes its own latency percentiles (HDR histograms in
//! `sluice-loadgen`'s `stats`) and reports them as JSON, which the stages
//! read; these are the statistics over what it reports.

/// Median, minimum and maximum of the runs of one figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Spread {
    /// `None` when there are no values.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Some(Self {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            runs: n,
        })
    }
}

/// The nearest-rank percentile `quantile` (0 to 1) of `values`.
pub fn nearest_rank(values: &[f64], quantile: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// A figure as the summary tables print it: thousands as whole numbers
/// with commas, tens with one decimal, smaller numbers with three.
pub fn readable(value: Option<f64>) -> String {
    let Some(value) = value else {
        return "-".into();
    };
    if value >= 1000.0 {
        with_commas(value.round() as i64)
    } else if value >= 10.0 {
        trimmed(value, 1)
    } else {
        trimmed(value, 3)
    }
}

/// Rounded to `decimals` places, without trailing zeros (as jq prints).
pub fn trimmed(value: f64, decimals: i32) -> String {
    let scale = 10f64.powi(decimals);
    let rounded = (value * scale).round() / scale;
    if rounded == rounded.trunc() && rounded.abs() < 1e15 {
        format!("{}", rounded as i64)
    } else {
        format!("{rounded}")
    }
}

fn with_commas(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if value < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let odd = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max, odd.runs), (2.0, 1.0, 3.0, 3));
        let even = Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(even.median, 2.5);
        assert_eq!(Spread::of(&[]), None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&values, 0.5), Some(50.0));
        assert_eq!(nearest_rank(&values, 0.95), Some(95.0));
        assert_eq!(nearest_rank(&values, 0.99), Some(99.0));
        assert_eq!(nearest_rank(&[7.0], 0.99), Some(7.0));
        assert_eq!(nearest_rank(&[5.0, 1.0, 3.0], 0.5), Some(3.0));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }

    #[test]
    fn figures_read_as_the_tables_print_them() {
        assert_eq!(readable(Some(1_234_567.4)), "1,234,567");
        assert_eq!(readable(Some(999.94)), "999.9");
        assert_eq!(readable(Some(12.0)), "12");
        assert_eq!(readable(Some(0.12345)), "0.123");
        assert_eq!(readable(None), "-");
        assert_eq!(trimmed(2.5, 1), "2.5");
    }
}
