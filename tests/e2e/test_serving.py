"""The server runner both apps use: every worker gets its own share of the connections, and
SIGTERM ends them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from litestar import Litestar, get

ROOT = Path(__file__).resolve().parents[2]


@get("/pid")
async def pid() -> int:
    return os.getpid()


def pid_app() -> Litestar:
    return Litestar(route_handlers=[pid])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_connections_are_spread_over_the_workers_and_sigterm_stops_them() -> None:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "casemgr.serving",
            "tests.e2e.test_serving:pid_app",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 30
        # Each client is a connection of its own; the kernel hashes each new one to a worker's
        # socket, so 40 of them reach both workers (all on one: 2 ** -39).
        while len(pids) < 2 and time.monotonic() < deadline:
            for _ in range(40):
                try:
                    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
                        pids.add(client.get("/pid").json())
                except httpx.TransportError:
                    time.sleep(0.2)  # still starting
        assert len(pids) == 2
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        for worker in pids:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                continue
            raise AssertionError(f"worker {worker} outlived the server")
    finally:
        if server.poll() is None:
            server.kill()


def broken_app() -> Litestar:
    raise RuntimeError("no configuration")


def test_workers_that_cannot_start_stop_the_server_with_an_error() -> None:
    server = subprocess.run(
        [
            sys.executable,
            "-m",
            "casemgr.serving",
            "tests.e2e.test_serving:broken_app",
            "--port",
            str(free_port()),
            "--workers",
            "2",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert server.returncode == 1
    assert "failed at start" in server.stderr
