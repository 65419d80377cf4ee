"""Turns gateway-sweep.csv into a Markdown table and one PNG per dimension."""

import csv
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {
    "batch": "events per request",
    "partitions": "partitions",
    "event_bytes": "event size (bytes)",
}


def main(csv_path: str, out_dir: str) -> None:
    rows = list(csv.DictReader(open(csv_path)))
    by_dimension = defaultdict(list)
    for row in rows:
        by_dimension[row["dimension"]].append(row)
    out = Path(out_dir)
    lines = [
        "| dimension | value | bare ev/s | gateway ev/s | ratio | peak p99 ms | half-peak p99 ms | gateway µs/event |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            "| {dimension} | {value} | {bare:,.0f} | {gw:,.0f} | {ratio:.3f} | {pp:.1f} | {hp:.1f} | {cpu:.1f} |".format(
                dimension=row["dimension"],
                value=row["value"],
                bare=float(row["bare_eps"]),
                gw=float(row["gateway_eps"]),
                ratio=float(row["ratio"]),
                pp=float(row["peak_p99_ms"]),
                hp=float(row["half_p99_ms"]),
                cpu=float(row["cpu_us_per_event"]),
            )
        )
    (out / "gateway-sweep.md").write_text("\n".join(lines) + "\n")
    for dimension, points in by_dimension.items():
        xs = [float(p["value"]) for p in points]
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        left.plot(xs, [float(p["gateway_eps"]) for p in points], "o-", label="gateway (HTTP)")
        left.plot(xs, [float(p["bare_eps"]) for p in points], "s--", label="bare rdkafka producer")
        left.set_xscale("log")
        left.set_xlabel(LABELS.get(dimension, dimension))
        left.set_ylabel("events/s")
        left.legend()
        left.grid(True, alpha=0.3)
        right.plot(xs, [float(p["half_p99_ms"]) for p in points], "o-", label="p99 at half peak")
        right.plot(xs, [float(p["peak_p99_ms"]) for p in points], "s--", label="p99 at peak")
        right.set_xscale("log")
        right.set_xlabel(LABELS.get(dimension, dimension))
        right.set_ylabel("ms")
        right.legend()
        right.grid(True, alpha=0.3)
        fig.suptitle(f"Ingest gateway vs bare producer: {LABELS.get(dimension, dimension)}")
        fig.tight_layout()
        fig.savefig(out / f"gateway-{dimension}.png", dpi=100)
        plt.close(fig)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
