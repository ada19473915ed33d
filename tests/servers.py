"""Private servers for tests that need what the shared ones are not: a Redis Cluster, a Redis
with AOF or a PostgreSQL that a test may kill and start again.

Started from the system's redis-server on free loopback ports in a temporary folder, and
stopped afterwards. Nothing here is a stand-in: it is the real server, configured apart.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_ports(n: int) -> list[int]:
    """Ports whose cluster-bus twin (port + 10000) is free as well."""
    rng = random.Random()
    ports: list[int] = []
    while len(ports) < n:
        port = rng.randrange(20000, 50000)
        if port not in ports and _is_free(port) and _is_free(port + 10000):
            ports.append(port)
    return ports


def _cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10, check=False
    ).stdout


@contextmanager
def redis_cluster(workdir: Path, nodes: int = 3) -> Iterator[str]:
    """A Redis Cluster of ``nodes`` primaries; yields the URL of its first node."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (scripts/test installs it)")
    ports = free_cluster_ports(nodes)
    try:
        for port in ports:
            node_dir = workdir / str(port)
            node_dir.mkdir(parents=True)
            subprocess.run(
                [
                    "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--daemonize",
                    "yes",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--dir",
                    str(node_dir),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--logfile",
                    str(node_dir / "redis.log"),
                ],
                check=True,
                timeout=10,
            )
        deadline = time.monotonic() + 10
        while any("PONG" not in _cli(p, "ping") for p in ports):
            if time.monotonic() > deadline:
                raise RuntimeError("cluster nodes did not start")
            time.sleep(0.05)
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            check=True,
            timeout=30,
        )
        while any("cluster_state:ok" not in _cli(p, "cluster", "info") for p in ports):
            if time.monotonic() > deadline + 20:
                raise RuntimeError("the cluster did not become ready")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for port in ports:
            _cli(port, "shutdown", "nosave")


@contextmanager
def redis_on_unix_socket(workdir: Path) -> Iterator[str]:
    """A Redis listening on a Unix socket only; yields its unix:// URL."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (scripts/test installs it)")
    path = workdir / "redis.sock"
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--unixsocket",
            str(path),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not path.exists():
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("redis-server on a Unix socket did not start")
            time.sleep(0.05)
        yield f"unix://{path}?db=2"
    finally:
        process.terminate()
        process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, what: str, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start on port {port}")


class PrivateRedis:
    """A Redis of the test's own on a free port, with AOF, that the test can kill and start
    again on the same port and data."""

    def __init__(self, workdir: Path, appendfsync: str = "always") -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed (scripts/test installs it)")
        self.workdir = workdir
        self.appendfsync = appendfsync
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                self.appendfsync,
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port, "redis-server", self.process)

    def kill(self) -> None:
        """SIGKILL: what is on disk is what the AOF holds."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@contextmanager
def private_redis(workdir: Path, appendfsync: str = "always") -> Iterator[PrivateRedis]:
    server = PrivateRedis(workdir, appendfsync)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def _pg_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL's server binaries are not installed (scripts/test installs them)")
    return found[-1].parent


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temporary folder, a free port, trust
    authentication), which the test can stop hard and start again. As root, the server runs as
    the postgres user, which it insists on."""

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        # Outside pytest's tmp_path, whose parents only root may enter.
        self.root = Path(tempfile.mkdtemp(prefix="casemgr-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.port = free_port()
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth",
            "trust",
            "-E",
            "UTF8",
        )

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as_postgres, *command], check=True, capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def runs_as_postgres(self) -> bool:
        return bool(self._as_postgres)

    def start(self, options: str = "") -> None:
        """Starts the server; `options` are more of its command line (they are kept for restarts)."""
        self._options = options or getattr(self, "_options", "")
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off {self._options}",
            "-w",
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        """ "immediate" is a crash as far as the clients can tell (recovery runs at the next start)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    try:
        yield server
    finally:
        server.remove()


def wait_ready(port: int, within_s: float = 60) -> None:
    """Until a service of ours on this port answers 200 on /health/ready."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"nothing ready on port {port} within {within_s} s")
