"""The pipelined script channel of the ingest path, here over a Unix socket (the rest of the
tracking tests use it over TCP)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis
from tracking.script_pipe import ScriptPipe

from tests.servers import redis_on_unix_socket

ECHO = "return {KEYS[1], ARGV[1]}"


async def test_calls_share_a_unix_socket_connection_and_survive_its_loss(tmp_path: Path) -> None:
    with redis_on_unix_socket(tmp_path) as url:
        redis = Redis.from_url(url)
        script = redis.register_script(ECHO)
        pipe = ScriptPipe(url)
        try:
            # NOSCRIPT on first use: loaded and sent again.
            replies = await asyncio.gather(*(pipe.evalsha(script, [f"k{i}"], [i]) for i in range(200)))
            assert replies == [[f"k{i}".encode(), str(i).encode()] for i in range(200)]
            await redis.set("probe", "x")
            assert await pipe.get("probe") == b"x"  # the URL's db=2, not db 0
            # Redis drops the connection (a restart, a failover): the next call connects anew.
            await redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            await asyncio.sleep(0.1)
            assert await pipe.evalsha(script, ["again"], [1]) == [b"again", b"1"]
        finally:
            pipe.close()
            await redis.aclose()


async def test_a_packed_call_finished_per_upload_is_the_same_call(tmp_path: Path) -> None:
    with redis_on_unix_socket(tmp_path) as url:
        redis = Redis.from_url(url)
        script = redis.register_script("return {KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]}")
        pipe = ScriptPipe(url)
        try:
            head = ScriptPipe.packed(script, ["k1", "k2"], [7, b"fields"])
            # NOSCRIPT on first use: loaded and sent again; then the same head with other lasts,
            # empty and binary ones too.
            for last in (b"fixes", b"", b"\r\n\x00\xff" * 100):
                assert await pipe.evalsha_packed(script, head, last) == [b"k1", b"k2", b"7", b"fields", last]
                assert await pipe.evalsha(script, ["k1", "k2"], [7, b"fields", last]) == [
                    b"k1",
                    b"k2",
                    b"7",
                    b"fields",
                    last,
                ]
        finally:
            pipe.close()
            await redis.aclose()
