"""The machine's floor for pushing one event to many streams: one process writes one frame the
size of an alert event to each of --connections loopback TCP sockets (uvloop, nothing else:
no HTTP, no ASGI, no Python per stream beyond the write call), with the readers in another
process as in bench/alert_stream.py. No server can fan an event out faster than this here.

    .venv/bin/python bench/socket_writes.py                    # 10,000 sockets, 10 rounds

Traffic stays on 127.0.0.1. Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import statistics
import sys
import time
from multiprocessing.synchronize import Event
from pathlib import Path

import uvloop
from reporting import facts, write_results

ROOT = Path(__file__).resolve().parents[1]
FRAME = b"id: 1234567\r\nevent: alert\r\ndata: " + b"x" * 360 + b"\r\n\r\n"


def raise_file_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def readers(port: int, count: int, ready: Event, seconds: float) -> None:
    raise_file_limit()

    class Reader(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(count):
            await loop.create_connection(Reader, "127.0.0.1", port)
        ready.set()
        await asyncio.sleep(seconds)

    uvloop.run(main())


async def measure(connections: int, rounds: int) -> list[float]:
    transports: list[asyncio.Transport] = []

    class Writer(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transports.append(transport)  # type: ignore[arg-type]

    server = await asyncio.get_running_loop().create_server(Writer, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    ready = multiprocessing.get_context("spawn").Event()
    reader = multiprocessing.get_context("spawn").Process(
        target=readers, args=(port, connections, ready, 30 + rounds)
    )
    reader.start()
    try:
        await asyncio.to_thread(ready.wait)
        await asyncio.sleep(1)
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            for transport in transports:
                transport.write(FRAME)
            times.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.5)
        return times
    finally:
        reader.terminate()
        server.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    if raise_file_limit() < args.connections + 100:  # per process: the writer's, the readers'
        sys.exit(f"the open-files limit is below {args.connections} connections")
    times = uvloop.run(measure(args.connections, args.rounds))
    result = {
        **facts("socket_writes"),
        "connections": args.connections,
        "frame_bytes": len(FRAME),
        "fan_out_ms": [round(t, 1) for t in times],
        "fan_out_median_ms": round(statistics.median(times), 1),
    }
    write_results(f"socket-writes-{args.connections}c", result)
    print(
        f"one frame ({len(FRAME)} B) to each of {args.connections:,} loopback sockets: "
        f"median {result['fan_out_median_ms']} ms, rounds {result['fan_out_ms']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
