"""Turns an e2e sweep CSV (`bench sweep-e2e`) into a Markdown table and a PNG of
freshness p50/p95/p99 against the offered rate.

Usage: plot_e2e.py CSV MARKDOWN PNG MAX_P95_MS
"""

import csv
import sys
from collections import defaultdict
from pathlib import Path
from statistics import median

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

PERCENTILES = [("p50", "o-"), ("p95", "s-"), ("p99", "^--")]


def number(text: str) -> float | None:
    return float(text) if text not in ("", "null") else None


def cell(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| rate ev/s | run | accepted ev/s | freshness p50 ms | p95 ms | p99 ms | count exact | passed "
        "| CPU gateway | processor(s) | query API | tansu | ClickHouse (shared) | load generator "
        "| load average (1, 5, 15 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cpu = [
            cell(number(row[key]), ".2f")
            for key in (
                "cpu_gateway",
                "cpu_processors",
                "cpu_query_api",
                "cpu_tansu",
                "cpu_clickhouse_shared",
                "cpu_loadgen",
            )
        ]
        passed = "yes" if row["passed"] == "true" else "**no**"
        if row["error"]:
            passed += f" ({row['error'][:80]})"
        lines.append(
            "| {rate:,} | {run} | {acc} | {p50} | {p95} | {p99} | {exact} | {passed} | {cpu} | {load} |".format(
                rate=int(row["rate"]),
                run=row["run"],
                acc=cell(number(row["accepted_eps"]), ",.0f"),
                p50=cell(number(row["freshness_p50_ms"]), ",.0f"),
                p95=cell(number(row["freshness_p95_ms"]), ",.0f"),
                p99=cell(number(row["freshness_p99_ms"]), ",.0f"),
                exact="yes" if row["exact"] == "true" else "**no**",
                passed=passed,
                cpu=" | ".join(cpu),
                load=", ".join(row[k] for k in ("load1", "load5", "load15")),
            )
        )
    return lines


def main(csv_path: str, md_path: str, png_path: str, max_p95_ms: str) -> None:
    rows = list(csv.DictReader(open(csv_path)))
    by_rate = defaultdict(list)
    for row in rows:
        by_rate[int(row["rate"])].append(row)
    sustained = [rate for rate, runs in by_rate.items() if all(r["passed"] == "true" for r in runs)]
    lines = table(rows)
    lines.append("")
    lines.append(
        "Highest rate at which every run passed (freshness p95 at most "
        f"{max_p95_ms} ms, exact count, at least 95 % accepted): "
        + (f"{max(sustained):,} events/s." if sustained else "none.")
    )
    Path(md_path).write_text("\n".join(lines) + "\n")

    fig, ax = plt.subplots(figsize=(8, 5))
    rates = sorted(by_rate)
    for name, style in PERCENTILES:
        points = [
            (rate, number(r[f"freshness_{name}_ms"]))
            for rate in rates
            for r in by_rate[rate]
            if number(r[f"freshness_{name}_ms"]) is not None
        ]
        medians = [
            (rate, median(v for x, v in points if x == rate))
            for rate in rates
            if any(x == rate for x, _ in points)
        ]
        line = ax.plot([x for x, _ in medians], [v for _, v in medians], style, label=f"freshness {name}")
        ax.scatter([x for x, _ in points], [v for _, v in points], s=12, alpha=0.5, color=line[0].get_color())
    failed = [rate for rate in rates if any(r["passed"] != "true" for r in by_rate[rate])]
    for rate in failed:
        ax.axvline(rate, color="red", alpha=0.2, linewidth=6)
    ax.axhline(float(max_p95_ms), color="black", linestyle=":", label=f"{float(max_p95_ms):g} ms (p95 limit)")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_xlabel("offered rate (events/s through the gateway)")
    ax.set_ylabel("ms from the gateway's ack to visible in the query API")
    ax.set_title("End to end: freshness against rate (red: a run failed)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main(*sys.argv[1:5])
