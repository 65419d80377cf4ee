//! Measured figures: each run of a stage records (stage, figure, unit,
//! run, value); the tables give one row per figure, by stage and then in
//! the order first measured, with the median, minimum and maximum over
//! the runs. Also written as `figures.jsonl` next to the logs.

use std::fmt::Write as _;
use std::path::Path;

use super::stats::{Spread, readable};

/// One measured figure of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub stage: &'static str,
    pub figure: String,
    pub unit: &'static str,
    pub run: u32,
    pub value: f64,
}

/// A figure's row in the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub stage: &'static str,
    pub figure: String,
    pub unit: &'static str,
    pub spread: Spread,
}

/// The stages in table order.
pub const STAGES: [&str; 6] = ["ingest", "processor", "e2e", "query", "export", "memory"];

#[derive(Debug, Default)]
pub struct Figures {
    pub recorded: Vec<Figure>,
}

impl Figures {
    pub fn record(
        &mut self,
        stage: &'static str,
        figure: impl Into<String>,
        unit: &'static str,
        run: u32,
        value: f64,
    ) {
        self.recorded.push(Figure {
            stage,
            figure: figure.into(),
            unit,
            run,
            value,
        });
    }

    /// One row per (stage, figure): by stage order, then first measured.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<(usize, usize, Row)> = Vec::new();
        for (seq, recorded) in self.recorded.iter().enumerate() {
            let known = rows
                .iter()
                .any(|(_, _, row)| row.stage == recorded.stage && row.figure == recorded.figure);
            if known {
                continue;
            }
            let values: Vec<f64> = self
                .recorded
                .iter()
                .filter(|other| other.stage == recorded.stage && other.figure == recorded.figure)
                .map(|other| other.value)
                .collect();
            let Some(spread) = Spread::of(&values) else {
                continue;
            };
            let order = STAGES
                .iter()
                .position(|stage| *stage == recorded.stage)
                .unwrap_or(STAGES.len());
            rows.push((
                order,
                seq,
                Row {
                    stage: recorded.stage,
                    figure: recorded.figure.clone(),
                    unit: recorded.unit,
                    spread,
                },
            ));
        }
        rows.sort_by_key(|(order, seq, _)| (*order, *seq));
        rows.into_iter().map(|(_, _, row)| row).collect()
    }

    /// The rows as CSV (numbers in full).
    pub fn csv(&self) -> String {
        let mut out =
            String::from("\"stage\",\"figure\",\"unit\",\"median\",\"min\",\"max\",\"runs\"\n");
        for row in self.rows() {
            let s = row.spread;
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{}",
                quoted(row.stage),
                quoted(&row.figure),
                quoted(row.unit),
                s.median,
                s.min,
                s.max,
                s.runs
            );
        }
        out
    }

    /// The rows as a Markdown table.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| stage | figure | unit | median | min | max | runs |\n|---|---|---|---|---|---|---|\n",
        );
        for row in self.rows() {
            let s = row.spread;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                row.stage,
                row.figure,
                row.unit,
                readable(Some(s.median)),
                readable(Some(s.min)),
                readable(Some(s.max)),
                s.runs
            );
        }
        out
    }

    /// The median of `figure` over its runs, if measured.
    pub fn median(&self, figure: &str) -> Option<Spread> {
        let values: Vec<f64> = self
            .recorded
            .iter()
            .filter(|recorded| recorded.figure == figure)
            .map(|recorded| recorded.value)
            .collect();
        Spread::of(&values)
    }

    /// Every figure as one JSON object a line.
    pub fn write_jsonl(&self, path: &Path) -> std::io::Result<()> {
        let mut out = String::new();
        for (seq, f) in self.recorded.iter().enumerate() {
            let line = serde_json::json!({"stage": f.stage, "figure": f.figure, "unit": f.unit,
                "run": f.run, "value": f.value, "seq": seq});
            let _ = writeln!(out, "{line}");
        }
        std::fs::write(path, out)
    }
}

/// A CSV field in double quotes (as jq's @csv writes strings).
pub fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_stage_order_then_first_measured() {
        let mut figures = Figures::default();
        figures.record("memory", "gateway peak RSS", "MiB", 1, 40.0);
        figures.record("ingest", "bare", "events/s", 1, 100.0);
        figures.record("ingest", "gateway", "events/s", 1, 50.0);
        figures.record("ingest", "bare", "events/s", 2, 300.0);
        figures.record("ingest", "bare", "events/s", 3, 200.0);
        let rows = figures.rows();
        let names: Vec<&str> = rows.iter().map(|row| row.figure.as_str()).collect();
        assert_eq!(names, ["bare", "gateway", "gateway peak RSS"]);
        assert_eq!(rows[0].spread.median, 200.0);
        assert_eq!(rows[0].spread.runs, 3);
    }

    #[test]
    fn tables_as_markdown_and_csv() {
        let mut figures = Figures::default();
        figures.record("ingest", "gateway \"HTTP\"", "events/s", 1, 123_456.7);
        let markdown = figures.markdown();
        assert!(
            markdown.contains(
                "| ingest | gateway \"HTTP\" | events/s | 123,457 | 123,457 | 123,457 | 1 |"
            ),
            "{markdown}"
        );
        let csv = figures.csv();
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .starts_with("\"ingest\",\"gateway \"\"HTTP\"\"\",\"events/s\",123456.7,"),
            "{csv}"
        );
    }
}
