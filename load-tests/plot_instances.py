"""Turns processor-instances.csv (from `bench all`) into a Markdown table and a PNG:
drain throughput and end-to-end p99 freshness by processor instances."""

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def number(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def main(csv_path: str, out_dir: str) -> None:
    rows = [{k: (v if k == "instances" else number(v)) for k, v in row.items()}
            for row in csv.DictReader(open(csv_path))]
    out = Path(out_dir)
    lines = [
        "| processors | drain ev/s (median) | min | max | events per processor CPU-s | e2e p99 ms (median) | min | max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['instances']} | {fmt(row['drain_eps'])} | {fmt(row['drain_eps_min'])} "
            f"| {fmt(row['drain_eps_max'])} | {fmt(row['events_per_cpu_s'])} "
            f"| {fmt(row['e2e_p99_ms'])} | {fmt(row['e2e_p99_ms_min'])} | {fmt(row['e2e_p99_ms_max'])} |"
        )
    (out / "processor-instances.md").write_text("\n".join(lines) + "\n")

    xs = [int(row["instances"]) for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key, label, unit in (
        (left, "drain_eps", "2M events produced and drained", "events/s"),
        (right, "e2e_p99_ms", "end-to-end freshness p99", "ms"),
    ):
        points = [(x, row) for x, row in zip(xs, rows) if row[key] is not None]
        if not points:
            continue
        px = [x for x, _ in points]
        mid = [row[key] for _, row in points]
        low = [row[key] - (row[f"{key}_min"] or row[key]) for _, row in points]
        high = [(row[f"{key}_max"] or row[key]) - row[key] for _, row in points]
        axis.errorbar(px, mid, yerr=[low, high], fmt="o-", capsize=4, label=f"{label} (median, min-max)")
        axis.set_xticks(xs)
        axis.set_xlabel("processor instances (one consumer group)")
        axis.set_ylabel(unit)
        axis.set_ylim(bottom=0)
        axis.legend()
        axis.grid(True, alpha=0.3)
    fig.suptitle("Stream processor: cost by instances (2 cores, broker and ClickHouse included)")
    fig.tight_layout()
    fig.savefig(out / "processor-instances.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
