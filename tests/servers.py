"""Private servers for tests that need what the shared ones are not: a Redis Cluster.

Started from the system's redis-server on free loopback ports in a temporary folder, and
stopped afterwards. Nothing here is a stand-in: it is the real server, configured apart.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
