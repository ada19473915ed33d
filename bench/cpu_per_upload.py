"""Benchmark: where the machine's CPU goes per single-ping upload, with 1,000 subjects and with
--scale N beside them, and per request of the empty handler (the limit): the ingest workers,
Redis (and its script's own time per call, from INFO commandstats) and the load generator, each
process's CPU time over a phase divided by the uploads of that phase, and the share of the
machine's CPUs left idle. It is how the cost of a million subjects was traced to the workers'
garbage collections, and then to the benchmark's own load (bench/wrk/pings.lua).

    .venv/bin/python bench/cpu_per_upload.py --scale 1000000     # about 5 minutes
    .venv/bin/python bench/cpu_per_upload.py --perf /tmp/perf    # and profiles per phase

With --perf DIR (Linux perf, as root) it also samples, during each phase, Redis's call stacks into
DIR/redis-<subjects>s-round<n>.data and the ingest workers' own functions into
DIR/workers-<subjects>s-round<n>.data: `perf report -i <file> --no-children` then says which
functions take the time, with few subjects and with many (the workers' profile found the
full collections walking a million devices' cache, tracking/device_cache.py).

Every subject settles before the phases (harness.settle, as in bench/tracking_ingest.py).
Each fleet is served from a Redis of its own (harness.start_redis; --shared-redis: both in the
Redis of scripts/lib.sh, REDIS_URL or the local one). Needs wrk and redis-server; the servers run
on this machine, traffic stays on 127.0.0.1. Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
from pathlib import Path

import redis
from harness import SETTLING_UPLOADS, cpu_times, free_port, quiet, settle, start, stop, wrk
from reporting import facts, machine, write_results
from tracking_ingest import Fleet, server_env

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LIMIT = "empty Litestar POST"


def cpu_seconds(pid: int) -> float:
    """User and system time of a process so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def workers_of(server_pid: int) -> list[int]:
    """The server's processes: itself and its children (casemgr.serving spawns the workers)."""
    pids = [server_pid]
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue
        if any(line.startswith("PPid:") and line.split()[1] == str(server_pid) for line in lines):
            pids.append(int(status.parent.name))
    return pids


def phase(
    port: int, subjects: int, server_pid: int, seconds: float, connections: int, client: redis.Redis
) -> dict[str, float]:
    quiet()
    client.config_resetstat()
    redis_pid = int(client.info("server")["process_id"])
    workers = workers_of(server_pid)
    before_workers = sum(cpu_seconds(p) for p in workers)
    before_redis = cpu_seconds(redis_pid)
    before_wrk = os.times()
    busy_before, all_before = cpu_times()
    load = wrk(port, subjects, 1, seconds, connections)
    busy_after, all_after = cpu_times()
    after_wrk = os.times()
    uploads = load["requests"]
    script = client.info("commandstats").get("cmdstat_evalsha", {})

    def per_upload_us(seconds_used: float) -> float:
        return round(seconds_used / uploads * 1e6, 1)

    return {
        "uploads_per_s": load["requests_per_s"],
        "workers_us": per_upload_us(sum(cpu_seconds(p) for p in workers) - before_workers),
        "redis_us": per_upload_us(cpu_seconds(redis_pid) - before_redis),
        "wrk_us": per_upload_us(
            after_wrk.children_user
            + after_wrk.children_system
            - before_wrk.children_user
            - before_wrk.children_system
        ),
        "script_us_per_call": float(script.get("usec_per_call", 0.0)),
        # The machine's CPUs left idle (or taken by the hypervisor) during the phase.
        "idle_share": round(1 - (busy_after - busy_before) / (all_after - all_before), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--scale", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--connections", type=int, default=256, help="wrk's connections (the load's concurrency)"
    )
    parser.add_argument(
        "--shared-redis",
        action="store_true",
        help="both fleets in the Redis of REDIS_URL, instead of a Redis of each fleet's own",
    )
    parser.add_argument(
        "--perf",
        type=Path,
        help="a directory for Redis's and the workers' profiles of each phase (Linux perf)",
    )
    args = parser.parse_args()
    # The ingest reads no table; its settings still need a database named.
    env = server_env(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    fleets = [Fleet(args.subjects), Fleet(args.scale)]
    servers = []
    clients: dict[int, redis.Redis] = {}
    rows: dict[str, list[dict[str, float]]] = {LIMIT: []} | {f"{fleet.subjects:,}": [] for fleet in fleets}
    try:
        # The limit's CPU per request beside the ingest's: what an upload costs on top of HTTP.
        limit_port = free_port()
        limit_server = start("bench.empty_app:build", limit_port, 2, env)
        servers.append(limit_server)
        wrk(limit_port, args.subjects, 1, 3, args.connections)
        for fleet in fleets:
            if not args.shared_redis:
                fleet.use_own_redis()
            clients[fleet.subjects] = redis.Redis.from_url(fleet.redis_url)
            fleet.publish(5)
            fleet.port = free_port()
            fleet_env = fleet.server_env(env)
            servers.append(start("tracking.asgi:build", fleet.port, 2, fleet_env, ready_path="/health/ready"))
            settle(fleet.port, fleet.subjects, args.connections, fleet.redis_url, fleet.keyspace)
            wrk(fleet.port, fleet.subjects, 1, 3, args.connections)  # connections and code paths warm
            print(f"{fleet.subjects:,} subjects ready", flush=True)
        for round_no in range(args.rounds):
            # The limit uses no Redis: the first fleet's is read, to show that it stays idle.
            figures = phase(
                limit_port,
                args.subjects,
                limit_server.pid,
                args.seconds,
                args.connections,
                clients[args.subjects],
            )
            rows[LIMIT].append(figures)
            print(f"round {round_no + 1}, {LIMIT}: {figures}", flush=True)
            for fleet, server in zip(fleets, servers[1:], strict=True):
                profilers = []
                if args.perf:
                    args.perf.mkdir(parents=True, exist_ok=True)
                    redis_pid = clients[fleet.subjects].info("server")["process_id"]
                    # Redis's call stacks; the workers' own functions only (CPython keeps no frame
                    # pointers, so their stacks would say little).
                    for name, pids, graph in (
                        ("redis", [redis_pid], ["-g"]),
                        ("workers", workers_of(server.pid)[1:], []),
                    ):
                        out = args.perf / f"{name}-{fleet.subjects}s-round{round_no + 1}.data"
                        command = ["perf", "record", "-F", "499", *graph, "-o", str(out)]
                        profilers.append(
                            subprocess.Popen(
                                [*command, "-p", ",".join(map(str, pids))],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                            )
                        )
                figures = phase(
                    fleet.port,
                    fleet.subjects,
                    server.pid,
                    args.seconds,
                    args.connections,
                    clients[fleet.subjects],
                )
                for profiler in profilers:
                    profiler.send_signal(signal.SIGINT)
                    profiler.wait(timeout=60)
                rows[f"{fleet.subjects:,}"].append(figures)
                print(f"round {round_no + 1}, {fleet.subjects:,} subjects: {figures}", flush=True)
    finally:
        for server in servers:
            stop(server)
        for client in clients.values():
            client.close()
        for fleet in fleets:
            fleet.drop()
    lines = [
        "| server | uploads/s | workers µs | Redis µs | script µs/call | wrk µs | CPUs idle |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, measured in rows.items():
        for figures in measured:
            lines.append(
                f"| {name} | {figures['uploads_per_s']:,.0f} | {figures['workers_us']} | "
                f"{figures['redis_us']} | {figures['script_us_per_call']} | {figures['wrk_us']} | {figures['idle_share']:.0%} |"
            )
    table = "\n".join(lines)
    print(table)
    write_results(
        f"cpu-per-upload-{args.subjects}s-vs-{args.scale}s-c{args.connections}",
        {
            **facts("cpu_per_upload"),
            "seconds": args.seconds,
            "connections": args.connections,
            "redis": "one shared by both fleets" if args.shared_redis else "a Redis of each fleet's own",
            "rounds": rows,
        },
        heading=f"CPU time per single-ping upload by process, {args.seconds:.0f} s phases, wrk with "
        f"{args.connections} connections, on "
        f"{machine()}; every subject settled first ({SETTLING_UPLOADS} uploads each)",
        table=table,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
