"""Benchmark: an ingest worker's own Python per single-ping upload, with --devices devices in its
cache, without HTTP or Redis: Ingest.upload as the route calls it (the device's entry, its
credentials, the decoding, every zone's evidence, the script's call packed, the crossing check)
for uploads of random devices, against a script channel that answers at once as Redis does for
a settled subject. With HTTP and Redis on the same two cores, what a million devices cost the
workers is lost in the host's noise (bench/cpu_per_upload.py: rounds from -4 to -37 % on one
morning); here it stands alone. Each size runs in a process of its own, as a worker would.
It also times a full garbage collection of the worker's heap then (casemgr/collector.py runs one
every ten minutes, every upload to the worker waiting for it).

    .venv/bin/python bench/worker_path.py                          # 1,000 and 1,000,000, ~2 minutes
    .venv/bin/python bench/worker_path.py --devices 1000 --devices 100000

Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(ROOT / "bench")]

import fleet  # noqa: E402
import msgspec  # noqa: E402
from redis.asyncio import Redis  # noqa: E402
from reporting import facts, machine, write_results  # noqa: E402
from tracking.ingest import Ingest  # noqa: E402
from tracking.keys import KeySpace  # noqa: E402
from tracking.scripts import Scripts  # noqa: E402

from casemgr.collector import collect_everything  # noqa: E402

_fixes = msgspec.msgpack.Decoder(list[list[Any]])
_encode = msgspec.msgpack.encode


class FleetChannel:
    """The script channel of the fleet's Redis, without Redis: a device's configuration as
    bench/fleet.py publishes it, and the ingest script's reply for a subject whose fix changes
    nothing (every fix applied, none a duplicate, no alert, and the previous fix a minute earlier
    a few metres off, so that the crossing check walks every exclusion zone, as it does with
    Redis's reply)."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    async def get(self, key: str) -> bytes:
        device_id = key.rsplit(":blob:", 1)[1]
        return msgspec.msgpack.encode(fleet.subject(int(device_id[1:]), 5, 1, self.now_ms))

    async def evalsha_packed(self, script: object, head: bytes, last: bytes) -> list[Any]:
        fixes = _fixes.decode(last)
        seq, t_ms, lon, lat = fixes[-1][:4]
        check = [[row[0] for row in fixes], [t_ms - 60_000, lon + 0.00003, lat, seq - 1]]
        return [b"ok", len(fixes), 0, 0, _encode(check)]


async def measure(devices: int, uploads: int, rounds: int) -> dict[str, list[float]]:
    now_ms = int(time.time() * 1000)
    redis = Redis()  # never connected: Scripts.register only hashes the scripts
    ingest = Ingest(
        redis=redis,
        scripts=Scripts.register(redis),
        keyring=fleet.KEYRING,
        keyspace=KeySpace(64, "worker-path"),
        pipe=FleetChannel(now_ms),  # type: ignore[arg-type]
        cache_size=devices,
    )
    fix_time = datetime.fromtimestamp(now_ms / 1000 - 5, UTC).isoformat()

    def upload_of(n: int, seq: int) -> tuple[str, str, bytes]:
        lon, lat = fleet.home_of(n)
        body = msgspec.json.encode({
            "device_id": fleet.device_id_of(n), "seq": seq, "fix_time": fix_time, "latitude": lat,
            "longitude": lon, "accuracy_m": 7.5, "battery_percent": 80,
        })  # fmt: skip
        return fleet.device_id_of(n), f"Bearer {fleet.secret_of(n)}", body

    async def send(device_id: str, authorization: str, body: bytes) -> None:
        await ingest.upload(
            device_id=device_id,
            authorization=authorization,
            signature=None,
            content_type="application/json",
            body=body,
        )

    for n in range(devices):  # every device's first upload loads it, as a preload would
        await send(*upload_of(n, 1))
    collect_everything()  # then frozen, as in a worker (casemgr/collector.py)
    draw = random.Random(1)
    requests = [upload_of(draw.randrange(devices), seq) for seq in range(2, uploads + 2)]
    measured = []
    for _ in range(rounds):
        started = time.perf_counter()
        for request in requests:
            await send(*request)
        measured.append(round((time.perf_counter() - started) / uploads * 1e6, 2))
    pauses = []
    for _ in range(rounds):  # as casemgr/collector.py does every ten minutes
        started = time.perf_counter()
        collect_everything()
        pauses.append(round((time.perf_counter() - started) * 1000, 1))
    return {"usec_per_upload": measured, "full_collection_ms": pauses}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--devices", type=int, action="append", help="repeatable; default 1,000 and 1,000,000"
    )
    parser.add_argument("--uploads", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: one size, JSON out
    args = parser.parse_args()
    if args.one:
        print(json.dumps(asyncio.run(measure(args.one, args.uploads, args.rounds))))
        return 0
    sizes = args.devices or [1000, 1_000_000]
    results = {}
    for devices in sizes:
        command = [sys.executable, __file__, "--one", str(devices), "--uploads", str(args.uploads)]
        output = subprocess.run([*command, "--rounds", str(args.rounds)], check=True, capture_output=True)
        results[devices] = json.loads(output.stdout.splitlines()[-1])  # after anything logged
        print(f"{devices:,} devices: {results[devices]}", flush=True)
    lines = [
        "| devices | the worker's Python, µs per upload (rounds) | a full collection, ms (rounds) |",
        "|---|---|---|",
    ]
    for devices, figures in results.items():
        per_upload, pauses = figures["usec_per_upload"], figures["full_collection_ms"]
        lines.append(f"| {devices:,} | {' / '.join(map(str, per_upload))} | {' / '.join(map(str, pauses))} |")
    table = "\n".join(lines)
    print(table)
    write_results(
        "worker-path-" + "-vs-".join(f"{n}d" for n in sizes),
        {
            **facts("worker_path"),
            "uploads": args.uploads,
            "usec_per_upload": {str(n): r["usec_per_upload"] for n, r in results.items()},
            "full_collection_ms": {str(n): r["full_collection_ms"] for n, r in results.items()},
        },
        heading=f"An ingest worker's Python per single-ping upload, {args.uploads:,} uploads of random "
        f"devices per round, no HTTP, no Redis, on {machine()}",
        table=table,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
