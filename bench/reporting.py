"""What every benchmark here does with its figures: bench/results/<date>-<host>-<name>.json
(everything measured) and .md (the heading and the table the README quotes)."""

from __future__ import annotations

import json
import math
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def facts(benchmark: str) -> dict[str, object]:
    """What every result starts with: which benchmark, when, and on which machine."""
    return {
        "benchmark": benchmark,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
    }


def machine() -> str:
    """This machine as the results' headings name it."""
    return f"{platform.node()} ({os.cpu_count()} CPUs)"


def write_results(name: str, result: dict[str, object], heading: str = "", table: str = "") -> Path:
    """Returns the path of the JSON file; the Markdown file is written beside it when there is a table."""
    out = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-{platform.node()}-{name}"
    json_path = out.with_name(out.name + ".json")
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    if table:
        out.with_name(out.name + ".md").write_text(f"{heading}\n\n{table}\n")
    return json_path


def largest_rss_mb(server_pid: int) -> float:
    """The resident memory of a server, or of its largest worker process when it has several."""
    largest = 0.0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        mine = status.parent.name == str(server_pid) or fields.get("PPid", "").strip() == str(server_pid)
        if mine and "VmRSS" in fields:
            largest = max(largest, int(fields["VmRSS"].split()[0]) / 1024)
    return round(largest, 1)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least q of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]
