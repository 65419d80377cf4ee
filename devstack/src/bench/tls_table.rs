//! The figures of `bench tls` and their tables: per (stage, figure), the
//! median with (min to max) over the rounds for each variant, and the
//! ratio of each secured variant's median to plaintext's; and the values
//! of every round, in the order measured.

use std::fmt::Write as _;

use super::gateway_table::aligned;
use super::stats::{Spread, readable, trimmed};

/// How the services reach the broker (and ClickHouse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Plain,
    SaslSsl,
    /// SASL_SSL to the broker and HTTPS to ClickHouse.
    SaslSslHttps,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::SaslSsl => "sasl_ssl",
            Self::SaslSslHttps => "sasl_ssl_https",
        }
    }

    pub fn secured(self) -> bool {
        self != Self::Plain
    }

    /// The broker side of the variant.
    pub fn kafka(self) -> Self {
        match self {
            Self::SaslSslHttps => Self::SaslSsl,
            other => other,
        }
    }
}

#[derive(Debug, Clone)]
struct Record {
    stage: &'static str,
    figure: String,
    variant: Variant,
    round: u32,
    value: Option<f64>,
}

const STAGES: [&str; 3] = ["gateway", "processor", "context"];

#[derive(Debug, Default)]
pub struct Figures {
    records: Vec<Record>,
}

impl Figures {
    fn record(
        &mut self,
        stage: &'static str,
        figure: &str,
        variant: Variant,
        round: u32,
        value: Option<f64>,
    ) {
        self.records.push(Record {
            stage,
            figure: figure.to_owned(),
            variant,
            round,
            value,
        });
    }

    pub fn gateway(&mut self, figure: &str, variant: Variant, round: u32, value: Option<f64>) {
        self.record("gateway", figure, variant, round, value);
    }

    pub fn processor(&mut self, figure: &str, variant: Variant, round: u32, value: Option<f64>) {
        self.record("processor", figure, variant, round, value);
    }

    pub fn context(&mut self, figure: &str, variant: Variant, round: u32, value: Option<f64>) {
        self.record("context", figure, variant, round, value);
    }

    /// The (stage, figure) pairs by stage, then first measured.
    fn figures(&self) -> Vec<(&'static str, &str)> {
        let mut seen: Vec<(usize, &'static str, &str)> = Vec::new();
        for record in &self.records {
            if !seen
                .iter()
                .any(|(_, s, f)| *s == record.stage && *f == record.figure)
            {
                let order = STAGES
                    .iter()
                    .position(|s| *s == record.stage)
                    .unwrap_or(STAGES.len());
                seen.push((order, record.stage, &record.figure));
            }
        }
        seen.sort_by_key(|(order, _, _)| *order);
        seen.into_iter()
            .map(|(_, stage, figure)| (stage, figure))
            .collect()
    }

    fn spread(&self, stage: &str, figure: &str, variant: Variant) -> Option<Spread> {
        let values: Vec<f64> = self
            .records
            .iter()
            .filter(|r| r.stage == stage && r.figure == figure && r.variant == variant)
            .filter_map(|r| r.value)
            .collect();
        Spread::of(&values)
    }

    /// The summary table in Markdown; `https` adds the third variant's columns.
    pub fn markdown(&self, https: bool) -> String {
        let mut out =
            String::from("| stage | figure | plaintext | SASL_SSL | SASL_SSL / plaintext");
        out.push_str(if https {
            " | SASL_SSL + HTTPS ClickHouse | that / plaintext |\n"
        } else {
            " |\n"
        });
        out.push_str(if https {
            "|---|---|---|---|---|---|---|\n"
        } else {
            "|---|---|---|---|---|\n"
        });
        let cell = |spread: Option<Spread>| {
            spread.map_or_else(
                || "-".to_owned(),
                |s| {
                    format!(
                        "{} ({} to {})",
                        readable(Some(s.median)),
                        readable(Some(s.min)),
                        readable(Some(s.max))
                    )
                },
            )
        };
        for (stage, figure) in self.figures() {
            let plain = self.spread(stage, figure, Variant::Plain);
            let ratio = |other: Option<Spread>| match (other, plain) {
                (Some(a), Some(b)) if stage != "context" && b.median != 0.0 => {
                    trimmed(a.median / b.median, 3)
                }
                _ => "-".into(),
            };
            let secured = self.spread(stage, figure, Variant::SaslSsl);
            let _ = write!(
                out,
                "| {stage} | {figure} | {} | {} | {}",
                cell(plain),
                cell(secured),
                ratio(secured)
            );
            if https {
                let with_https = self.spread(stage, figure, Variant::SaslSslHttps);
                let _ = write!(out, " | {} | {}", cell(with_https), ratio(with_https));
            }
            out.push_str(" |\n");
        }
        out
    }

    /// Every round's value per (stage, figure, variant), in the order measured.
    pub fn per_round(&self) -> String {
        let mut keys: Vec<(&'static str, &str, Variant)> = Vec::new();
        for r in &self.records {
            if !keys
                .iter()
                .any(|(s, f, v)| *s == r.stage && *f == r.figure && *v == r.variant)
            {
                keys.push((r.stage, &r.figure, r.variant));
            }
        }
        let lines: Vec<Vec<String>> = keys
            .into_iter()
            .map(|(stage, figure, variant)| {
                let mut rounds: Vec<&Record> = self
                    .records
                    .iter()
                    .filter(|r| r.stage == stage && r.figure == figure && r.variant == variant)
                    .collect();
                rounds.sort_by_key(|r| r.round);
                let values: Vec<String> = rounds.iter().map(|r| round_value(r.value)).collect();
                vec![
                    stage.to_owned(),
                    figure.to_owned(),
                    variant.name().to_owned(),
                    values.join(" "),
                ]
            })
            .collect();
        aligned(&lines)
    }
}

/// A value of the per-round listing: whole above 1000, else 1 or 3 decimals.
fn round_value(value: Option<f64>) -> String {
    match value {
        None => "-".into(),
        Some(v) if v >= 1000.0 => format!("{}", v.round() as i64),
        Some(v) if v >= 10.0 => trimmed(v, 1),
        Some(v) => trimmed(v, 3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_gives_medians_ranges_and_ratios_to_plaintext() {
        let mut figures = Figures::default();
        for (round, plain, secured) in [
            (1, 100_000.0, 80_000.0),
            (2, 120_000.0, 60_000.0),
            (3, 110_000.0, 70_000.0),
        ] {
            figures.gateway("peak events/s", Variant::Plain, round, Some(plain));
            figures.gateway("peak events/s", Variant::SaslSsl, round, Some(secured));
            figures.context("opened", Variant::Plain, round, None);
            figures.context("opened", Variant::SaslSsl, round, Some(4.0));
        }
        let table = figures.markdown(false);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[2],
            "| gateway | peak events/s | 110,000 (100,000 to 120,000) | 70,000 (60,000 to 80,000) | 0.636 |"
        );
        assert_eq!(lines[3], "| context | opened | - | 4 (4 to 4) | - |");
        let rounds = figures.per_round();
        assert!(
            rounds
                .lines()
                .next()
                .unwrap()
                .ends_with("100000 120000 110000"),
            "{rounds}"
        );
        assert!(rounds.contains("- - -"), "{rounds}");
        assert!(
            figures
                .markdown(true)
                .lines()
                .next()
                .unwrap()
                .contains("HTTPS ClickHouse")
        );
    }
}
