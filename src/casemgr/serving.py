"""One way to serve both apps: uvicorn workers, each with its own listening socket.

uvicorn's own ``--workers`` shares one listening socket among its processes, and whichever
process wakes first accepts: with long-lived keep-alive connections (a device fleet behind a
proxy, a load generator) one worker can end up holding nearly every connection while the other
idles. Measured with bench/tracking_ingest.py: the same server gave 17,600 or 30,100 req/s from
one run to the next, as the connections happened to fall. Here every worker binds its own socket
with SO_REUSEPORT and the kernel spreads new connections across them evenly.

The parent only supervises: it starts the workers, starts again one that dies, and passes
SIGTERM/SIGINT on; each worker drains its requests in flight (uvicorn's graceful shutdown) and
exits.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn

from casemgr.http_protocol import CoalescingHttpToolsProtocol

# A worker that ends sooner than this after it started failed to start.
STARTUP_S = 10.0


@dataclass(frozen=True, slots=True)
class ServeOptions:
    factory: str  # "module:function" returning the ASGI app
    host: str
    port: int
    workers: int
    graceful_seconds: float = 30.0


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _config(options: ServeOptions) -> uvicorn.Config:
    return uvicorn.Config(
        options.factory,
        factory=True,
        host=options.host,
        port=options.port,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,
        # On SIGTERM: stop accepting, let requests in flight finish (up to this long), then
        # run the lifespan's shutdown, which closes the pools.
        timeout_graceful_shutdown=int(options.graceful_seconds),
    )


def _worker(options: ServeOptions) -> None:
    # A process group of its own: a Ctrl-C in the terminal reaches the parent alone, which
    # passes it on once (a second SIGINT would make uvicorn skip the graceful shutdown).
    os.setpgid(0, 0)
    sock = _listening_socket(options.host, options.port)
    uvicorn.Server(_config(options)).run(sockets=[sock])


def serve(options: ServeOptions) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit status."""
    if options.workers <= 1:
        uvicorn.Server(_config(options)).run()
        return 0
    # Bind once here first: a port in use fails now, with a clear error, not in every worker.
    _listening_socket(options.host, options.port).close()
    context = multiprocessing.get_context("spawn")
    stopping = False

    started_at: dict[int, float] = {}

    def start() -> BaseProcess:
        process = context.Process(target=_worker, args=(options,), daemon=False)
        process.start()
        started_at[id(process)] = time.monotonic()
        return process

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in workers:
            if process.pid is not None and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    workers = [start() for _ in range(options.workers)]
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    while not stopping:
        for index, process in enumerate(workers):
            if process.is_alive() or stopping:
                continue
            if time.monotonic() - started_at[id(process)] < STARTUP_S:
                # It could not start (configuration, port, a dependency): starting it again
                # would only repeat that. Stop the others and say so.
                print(f"casemgr: worker {process.pid} failed at start ({process.exitcode})", file=sys.stderr)
                status = 1
                stop(signal.SIGTERM, None)
                break
            print(
                f"casemgr: worker {process.pid} exited ({process.exitcode}); starting another",
                file=sys.stderr,
            )
            workers[index] = start()
        time.sleep(0.5)
    deadline = time.monotonic() + options.graceful_seconds + 5
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
    return status


def main(argv: list[str] | None = None) -> int:
    """``python -m casemgr.serving module:factory --port N --workers N``: any app factory served
    the way casemgr's own are (the benchmarks serve their peers through it)."""
    parser = argparse.ArgumentParser(prog="python -m casemgr.serving")
    parser.add_argument("factory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    return serve(ServeOptions(args.factory, args.host, args.port, args.workers))


if __name__ == "__main__":
    sys.exit(main())
