"""The server runner both apps use: every worker gets its own share of the connections,
SIGTERM ends them all, and a reply reaches the socket in one write."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, get, post
from litestar.response import Stream

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


@post("/echo", status_code=200)
async def echo(request: Request[Any, Any, Any]) -> bytes:
    return await request.body()


@get("/counting")
async def counting() -> Stream:
    async def parts() -> Iterator[bytes]:  # type: ignore[misc]
        for n in range(3):
            await asyncio.sleep(0.01)
            yield f"{n};".encode()

    return Stream(parts())


def echo_app() -> Litestar:
    return Litestar(route_handlers=[echo, counting])


@contextmanager
def one_worker(app: str) -> Iterator[tuple[int, int]]:
    """A server of one process (casemgr.serving runs it in its own): its port and pid."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "casemgr.serving", app, "--port", str(port), "--workers", "1"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield port, server.pid
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def write_calls(pid: int) -> int:
    """The write system calls a process has made (Linux counts them in /proc/<pid>/io)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError("no syscw in /proc/<pid>/io")


def read_replies(sock: socket.socket, count: int) -> list[bytes]:
    """`count` replies with a Content-Length, their bodies in order."""
    buffered, bodies = b"", []
    while len(bodies) < count:
        while b"\r\n\r\n" not in buffered:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed the connection after {len(bodies)} replies"
            buffered += chunk
        head, buffered = buffered.split(b"\r\n\r\n", 1)
        headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
        length = int(headers[b"content-length"])
        while len(buffered) < length:
            buffered += sock.recv(65536)
        bodies.append(buffered[:length])
        buffered = buffered[length:]
    return bodies


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts writes in Linux's /proc")
def test_each_reply_reaches_the_socket_in_one_write() -> None:
    """uvicorn writes the headers and the body apart; the server's protocol joins them (a
    tenth of a tracking worker's time and half of the load generator's went to the second)."""
    with (
        one_worker("tests.e2e.test_serving:echo_app") as (port, pid),
        socket.create_connection(("127.0.0.1", port)) as sock,
    ):
        request = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
        sock.sendall(request)
        assert read_replies(sock, 1) == [b"hello"]  # the connection and the app are warm
        before = write_calls(pid)
        for _ in range(200):
            sock.sendall(request)
            assert read_replies(sock, 1) == [b"hello"]
        written = write_calls(pid) - before
    assert written <= 220, f"{written} writes for 200 replies"


def test_pipelined_replies_a_streamed_one_and_the_last_before_a_close_all_arrive_in_order() -> None:
    with (
        one_worker("tests.e2e.test_serving:echo_app") as (port, _),
        socket.create_connection(("127.0.0.1", port)) as sock,
    ):
        sock.sendall(
            b"".join(
                b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                for body in (b"one", b"two", b"three")
            )
        )
        assert read_replies(sock, 3) == [b"one", b"two", b"three"]
        sock.sendall(b"GET /counting HTTP/1.1\r\nHost: t\r\n\r\n")
        streamed = b""
        while not streamed.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            assert chunk
            streamed += chunk
        assert b"0;" in streamed and b"1;" in streamed and b"2;" in streamed
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 4\r\n\r\nlast")
        assert read_replies(sock, 1) == [b"last"]
        assert sock.recv(65536) == b""  # closed once the reply was out
