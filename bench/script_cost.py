"""Benchmark: the ingest script's own cost per call in Redis, with nothing else on the machine's
cores competing: for each measurement a fresh private Redis on a free port, --subjects subjects of
5 zones published and each reporting once, then --uploads uploads of random subjects through the
real ingest (its pipelined script channel), of one fix each or of --batch consecutive fixes,
and Redis's `INFO commandstats` for EVALSHA. Run with several --subjects to see what a larger
keyspace costs the same script; with --root, the tracking code of another checkout is measured
instead (an A/B of two versions, in turn).

    .venv/bin/python bench/script_cost.py                                  # 1,000 and 300,000
    .venv/bin/python bench/script_cost.py --subjects 1000 --root /tmp/old  # another checkout
    .venv/bin/python bench/script_cost.py --perf /tmp/perf                 # and Redis's profile
    .venv/bin/python bench/script_cost.py --batch 500 --uploads 2000       # batches: µs per fix

With --perf DIR (Linux perf, as root) Redis's call stacks are sampled during each round's
uploads into DIR/script-<subjects>s-round<n>.data (`perf report -i <file> --no-children`).

Needs redis-server on the PATH. Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from redis.asyncio import Redis
from reporting import facts, machine, write_results

ROOT = Path(__file__).resolve().parents[1]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, action="append", help="repeatable; default 1,000 and 300,000")
    parser.add_argument("--uploads", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        help="fixes per upload, consecutive numbers (the cost is then per fix)",
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the checkout whose tracking code is measured"
    )
    parser.add_argument(
        "--perf", type=Path, help="a directory for Redis's profile of each round (Linux perf)"
    )
    return parser.parse_args()


ARGS = parse()
# The measured checkout's tracking package and benchmark fleet, ahead of this one's (the
# results still go to this checkout's bench/results).
sys.path[:0] = [str(ARGS.root), str(ARGS.root / "bench")]

import fleet  # noqa: E402
from harness import SETTLING_UPLOADS, start_redis, stop_redis  # noqa: E402
from tracking.ingest import Ingest  # noqa: E402
from tracking.keys import KeySpace  # noqa: E402
from tracking.script_pipe import ScriptPipe  # noqa: E402
from tracking.scripts import Scripts  # noqa: E402

import tracking  # noqa: E402

# Nothing above may import this checkout's tracking before the path is set: an A/B would then
# measure one version twice (it did, until the imports were put in this order).
if not Path(tracking.__file__).resolve().is_relative_to(ARGS.root.resolve()):
    sys.exit(f"tracking was imported from {tracking.__file__}, not from {ARGS.root}")


async def measure(url: str, subjects: int, uploads: int, batch: int, profile: Path | None) -> float:
    """The script's µs per call, or per fix of a batch."""
    redis = Redis.from_url(url)
    keyspace = KeySpace(64, "cost")
    await fleet.publish(redis, keyspace, subjects, 5)
    pipe = ScriptPipe(url)
    ingest = Ingest(
        redis=redis, scripts=Scripts.register(redis), keyring=fleet.KEYRING, keyspace=keyspace, pipe=pipe
    )
    sequence = [0] * subjects

    last_fix_ms = [0] * subjects

    async def upload(n: int, fixes: int = 1) -> None:
        lon, lat = fleet.home_of(n)
        pings = []
        for _ in range(fixes):
            sequence[n] += 1
            # Each fix a millisecond after the device's last at least: every one is evaluated.
            last_fix_ms[n] = max(int(time.time() * 1000), last_fix_ms[n] + 1)
            pings.append({
                "device_id": fleet.device_id_of(n),
                "seq": sequence[n],
                "fix_time": datetime.fromtimestamp(last_fix_ms[n] / 1000, UTC).isoformat(),
                "longitude": lon,
                "latitude": lat,
                "accuracy_m": 5.0,
                "battery_percent": 80,
            })  # fmt: skip
        await ingest.upload(
            device_id=fleet.device_id_of(n),
            authorization=f"Bearer {fleet.secret_of(n)}",
            signature=None,
            content_type="application/json",
            body=msgspec.json.encode(pings[0] if fixes == 1 else pings),
        )

    try:
        # Every subject settles first (harness.settle): a fleet's steady state, its zones confirmed.
        for _ in range(SETTLING_UPLOADS):
            for first in range(0, subjects, 1000):
                await asyncio.gather(*(upload(n) for n in range(first, min(subjects, first + 1000))))
        await redis.config_resetstat()
        profiler = None
        if profile is not None:
            pid = (await redis.info("server"))["process_id"]
            profiler = await asyncio.create_subprocess_exec(
                *["perf", "record", "-F", "999", "-g", "-p", str(pid), "-o", str(profile)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        draw = random.Random(1)
        per_gather = max(1, 1000 // batch)
        for _ in range(uploads // per_gather):
            await asyncio.gather(*(upload(draw.randrange(subjects), batch) for _ in range(per_gather)))
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            await asyncio.wait_for(profiler.wait(), timeout=60)
        stats = (await redis.info("commandstats"))["cmdstat_evalsha"]
        return round(float(stats["usec_per_call"]) / batch, 3)
    finally:
        pipe.close()
        await redis.aclose()


def main() -> int:
    scales = ARGS.subjects or [1000, 300_000]
    unit = "call" if ARGS.batch == 1 else "fix"
    measured: dict[int, list[float]] = {n: [] for n in scales}
    for round_no in range(ARGS.rounds):
        for subjects in scales:
            profile = None
            if ARGS.perf:
                ARGS.perf.mkdir(parents=True, exist_ok=True)
                profile = ARGS.perf / f"script-{subjects}s-round{round_no + 1}.data"
            # A fresh Redis for each: a FLUSHALL of a million subjects outlasts a client's timeout,
            # and the memory it frees would leave the next fleet laid out otherwise than the first.
            server = start_redis()
            try:
                cost = asyncio.run(measure(server.url, subjects, ARGS.uploads, ARGS.batch, profile))
            finally:
                stop_redis(server)
            measured[subjects].append(cost)
            print(f"round {round_no + 1}, {subjects:,} subjects: {cost} µs per {unit}", flush=True)
    table = "\n".join(
        [f"| subjects | ingest script, µs per {unit} (rounds) |", "|---|---|"]
        + [f"| {n:,} | {' / '.join(str(c) for c in costs)} |" for n, costs in measured.items()]
    )
    print(table)
    name = "script-cost-" + "-vs-".join(f"{n}s" for n in scales)
    if ARGS.batch > 1:
        name += f"-batch{ARGS.batch}"
    if ARGS.root != ROOT:
        name += "-" + ARGS.root.name
    write_results(
        name,
        {
            **facts("script_cost"),
            "root": str(ARGS.root),
            "uploads": ARGS.uploads,
            "batch": ARGS.batch,
            "usec_per_call": {str(n): costs for n, costs in measured.items()},
        },
        heading=f"The ingest script alone in a private Redis, {ARGS.uploads:,} uploads of {ARGS.batch} "
        f"fix(es) of random subjects per round, on {machine()}",
        table=table,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
