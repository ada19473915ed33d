"""Benchmark: an A/B of two versions of the tracking core, served side by side. Two fleets of
--subjects subjects, each in a Redis of its own: A served by this checkout's tracking, B by the
checkout --other (its tracking package and scripts, found first on the workers' path); both
settled, then measured in --rounds alternating single-ping phases (every other round B first),
each on an idle machine. The verdict is the median of the rounds' A/B ratios: on this VM the
speed of one server moves by a third from one minute to the next, so only versions measured
in turn, in the same run, can be compared.

    git worktree add /tmp/base HEAD                   # the version to compare with
    .venv/bin/python bench/ab_checkouts.py --other /tmp/base --subjects 1000000

Both fleets are held at once (about 7 GB at a million subjects of 5 zones). Needs wrk and
redis-server; traffic stays on 127.0.0.1. Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
from pathlib import Path

import redis
from harness import free_port, quiet, settle, start, stop, wrk
from reporting import facts, largest_rss_mb, machine, write_results
from tracking_ingest import Fleet, server_env

ROOT = Path(__file__).resolve().parents[1]


def ingest_sha(root: Path) -> str:
    """The SHA1 of a checkout's ingest script as the workers load it (tracking/scripts.py)."""
    scripts = root / "tracking" / "scripts"
    source = (scripts / "common.lua").read_text() + "\n" + (scripts / "ingest.lua").read_text()
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


def version_of(root: Path) -> str:
    """The checkout's commit, marked when its files differ from it: what the results compare."""
    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return f"{commit} with uncommitted changes" if changed else commit


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--other", type=Path, required=True, help="the checkout B is served from")
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=256)
    o = parser.parse_args()
    roots = {"A": ROOT, "B": o.other.resolve()}
    if roots["A"] == roots["B"]:
        parser.error("--other names this checkout")
    # Taken before the run: what was measured, whatever happens to the checkouts meanwhile.
    versions = {name: f"{root} ({version_of(root)})" for name, root in roots.items()}
    fleets = {name: Fleet(o.subjects) for name in roots}
    env = server_env("postgresql://postgres@127.0.0.1:5432/postgres")
    servers = {}
    try:
        for fleet in fleets.values():
            fleet.use_own_redis()
            fleet.publish(5)
        for name, fleet in fleets.items():
            fleet.port = free_port()
            servers[name] = start(
                "tracking.asgi:build",
                fleet.port,
                2,
                {**fleet.server_env(env), "PYTHONPATH": f"{roots[name]}:{roots[name] / 'src'}"},
                ready_path="/health/ready",
                cwd=roots[name],
            )
            if Path(os.readlink(f"/proc/{servers[name].pid}/cwd")) != roots[name]:
                raise SystemExit(f"{name} was not started in {roots[name]}")
        for name, fleet in fleets.items():
            wrk(fleet.port, o.subjects, 1, 3, o.connections)
            settle(fleet.port, o.subjects, o.connections, fleet.redis_url, fleet.keyspace)
            # Each server ran its own checkout's ingest script (loaded on its first call), or the
            # A/B measures nothing.
            if not redis.Redis.from_url(fleet.redis_url).script_exists(ingest_sha(roots[name]))[0]:
                raise SystemExit(f"{name} did not run the ingest script of {roots[name]}")
        rss = {name: largest_rss_mb(server.pid) for name, server in servers.items()}
        rates: dict[str, list[float]] = {"A": [], "B": []}
        for round_no in range(o.rounds):
            for name in ("A", "B") if round_no % 2 == 0 else ("B", "A"):
                quiet()
                rates[name].append(
                    wrk(fleets[name].port, o.subjects, 1, o.seconds, o.connections)["requests_per_s"]
                )
            print(f"round {round_no + 1}: A {rates['A'][-1]:,.0f}, B {rates['B'][-1]:,.0f} req/s", flush=True)
    finally:
        for server in servers.values():
            stop(server)
        for fleet in fleets.values():
            fleet.drop()
    ratios = [a / b for a, b in zip(rates["A"], rates["B"], strict=True)]
    table = "\n".join(
        [
            "| | A (this checkout) | B (--other) |",
            "|---|---|---|",
            "| single pings, req/s by round | "
            + " / ".join(f"{r:,.0f}" for r in rates["A"])
            + " | "
            + " / ".join(f"{r:,.0f}" for r in rates["B"])
            + " |",
            f"| a worker's RSS | {rss['A']:,.0f} MB | {rss['B']:,.0f} MB |",
            f"| A/B, median of the rounds | {statistics.median(ratios):.3f} "
            f"({', '.join(f'{r:.3f}' for r in ratios)}) | |",
        ]
    )
    print(table)
    write_results(
        f"ab-checkouts-{o.subjects}s",
        {
            **facts("ab_checkouts"),
            "a": versions["A"],
            "b": versions["B"],
            "subjects": o.subjects,
            "seconds": o.seconds,
            "connections": o.connections,
            "requests_per_s": rates,
            "worker_rss_mb": rss,
            "median_ratio": round(statistics.median(ratios), 3),
        },
        heading=f"A/B of {versions['A']} and {versions['B']}, {o.subjects:,} subjects each, "
        f"single pings at {o.connections} connections, on {machine()}",
        table=table,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
