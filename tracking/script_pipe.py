"""EVALSHA to one Redis server over a few pipelined connections: the ingest's one round trip.

redis-py checks a connection out of its pool and back for every command, wraps it in retry
and timeout machinery, and parses the reply through several layers; on the ingest path that
was about a third of a worker's time per single-ping upload (py-spy, bench/tracking_ingest.py).
Here many uploads in flight share a connection: each writes its command (packed by hiredis)
and waits for its reply, which Redis sends in order and hiredis parses. A lost connection
fails the uploads waiting on it (the devices send them again) and is made anew on next use.
A call that differs from the last one of its device only in its last argument (the ingest's:
the fixes) can be packed once up to that argument (`packed`) and finished per upload
(`evalsha_packed`): no packing of the keys and configuration on every upload, nor, among a
million devices, reading their scattered strings.
Only for a single Redis server: against a cluster the ingest uses redis-py, which routes by
slot.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

# How the protocol ends a command with an empty last argument: what packed() leaves off.
_EMPTY_BULK = b"$0\r\n\r\n"


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        # Futures waiting for replies, in the order their commands went out, with when they were sent.
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._transport: asyncio.Transport | None = None
        # Commands of one event-loop turn go out in one write: fewer system calls here and fewer
        # reads for Redis (py-spy showed the write per command as a tenth of a worker's time).
        self._outgoing: list[bytes] = []
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            future, _ = self._waiting.popleft()
            if future.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                message = str(reply)
                future.set_exception(
                    NoScriptError(message) if message.startswith("NOSCRIPT") else ResponseError(message)
                )
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(RedisConnectionError("connection to Redis lost"))

    def send(self, *args: Any) -> asyncio.Future[Any]:
        return self.send_packed(hiredis.pack_command(args))

    def send_packed(self, command: bytes) -> asyncio.Future[Any]:
        if self.lost or self._transport is None:
            raise RedisConnectionError("connection to Redis lost")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((future, loop.time()))
        if not self._outgoing:
            loop.call_soon(self._flush)
        self._outgoing.append(command)
        return future

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if self._transport is not None and not self.lost:
            self._transport.write(b"".join(outgoing))

    def overdue(self, older_than: float) -> bool:
        """Whether the oldest command still waiting was sent before ``older_than``."""
        return bool(self._waiting) and self._waiting[0][1] < older_than

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _tls_context(query: dict[str, list[str]]) -> ssl.SSLContext:
    """For rediss:// URLs, from the query parameters redis-py reads too (ssl_ca_certs,
    ssl_certfile, ssl_keyfile, ssl_cert_reqs, ssl_check_hostname), so one REDIS_URL serves both."""

    def first(name: str) -> str | None:
        return query.get(name, [None])[0]

    context = ssl.create_default_context(cafile=first("ssl_ca_certs"))
    if first("ssl_certfile"):
        context.load_cert_chain(first("ssl_certfile"), first("ssl_keyfile"))  # type: ignore[arg-type]
    if first("ssl_check_hostname") in ("false", "False", "0"):
        context.check_hostname = False
    if first("ssl_cert_reqs") in ("none", "CERT_NONE"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ScriptPipe:
    def __init__(
        self, url: str, connections: int = 1, connect_timeout: float = 5.0, reply_timeout: float = 5.0
    ) -> None:
        parts = urlsplit(url)
        # redis://host:port/db, rediss://... (TLS), or unix:///path/to/redis.sock?db=N (a Redis on
        # the same machine: a write to a Unix socket costs far less than one through loopback TCP).
        self._unix_path = parts.path if parts.scheme == "unix" else None
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        if self._unix_path is not None:
            self._db = int(parse_qs(parts.query).get("db", ["0"])[0])
        else:
            self._db = int(parts.path.lstrip("/") or 0)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._connect_timeout = connect_timeout
        self._tls = _tls_context(parse_qs(parts.query)) if parts.scheme == "rediss" else None
        self._slots: list[_Connection | None] = [None] * connections
        self._locks = [asyncio.Lock() for _ in range(connections)]
        self._next = itertools.cycle(range(connections))
        self._reply_timeout = reply_timeout
        self._sweeper: asyncio.Task[None] | None = None

    async def _sweep(self) -> None:
        """One timer for every command in flight: a connection whose oldest command has waited
        longer than the reply timeout is dropped, failing what waits on it (cheaper than a
        timer per upload)."""
        while True:
            await asyncio.sleep(self._reply_timeout / 5)
            cutoff = asyncio.get_running_loop().time() - self._reply_timeout
            for connection in self._slots:
                if connection is not None and connection.overdue(cutoff):
                    connection.close()
                    connection.connection_lost(TimeoutError())

    async def _connection(self, slot: int) -> _Connection:
        connection = self._slots[slot]
        if connection is not None and not connection.lost:
            return connection
        async with self._locks[slot]:
            connection = self._slots[slot]
            if connection is not None and not connection.lost:
                return connection
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self._connect_timeout):
                    if self._unix_path is not None:
                        _, connection = await loop.create_unix_connection(_Connection, self._unix_path)
                    else:
                        _, connection = await loop.create_connection(
                            _Connection,
                            self._host,
                            self._port,
                            ssl=self._tls,
                            server_hostname=self._host if self._tls is not None else None,
                        )
                    if self._password is not None:
                        credentials = (
                            (self._username, self._password) if self._username else (self._password,)
                        )
                        await connection.send("AUTH", *credentials)
                    if self._db:
                        await connection.send("SELECT", self._db)
            except OSError as e:
                raise RedisConnectionError(f"cannot connect to Redis: {type(e).__name__}") from None
            self._slots[slot] = connection
            return connection

    async def evalsha(self, script: AsyncScript, keys: Sequence[str], args: list[Any]) -> Any:
        return await self._call(
            script, hiredis.pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))
        )

    @staticmethod
    def packed(script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> bytes:
        """EVALSHA of `script` with `keys`, `args` and one argument more, packed up to that one
        (the protocol's array header already counts it): finished by evalsha_packed."""
        command: bytes = hiredis.pack_command(("EVALSHA", script.sha, len(keys), *keys, *args, b""))
        assert command.endswith(_EMPTY_BULK)
        return command[: -len(_EMPTY_BULK)]

    async def evalsha_packed(self, script: AsyncScript, head: bytes, last: bytes) -> Any:
        """The call `head` (from packed) with `last` as its last argument."""
        return await self._call(script, b"%s$%d\r\n%s\r\n" % (head, len(last), last))

    async def _call(self, script: AsyncScript, command: bytes) -> Any:
        """`command`, an EVALSHA of `script`, packed."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        connection = await self._connection(next(self._next))
        try:
            return await connection.send_packed(command)
        except NoScriptError:
            # Redis restarted, or was flushed of its scripts: load it and send again.
            await connection.send("SCRIPT", "LOAD", script.script)
            return await connection.send_packed(command)

    async def get(self, key: str) -> bytes | None:
        connection = await self._connection(next(self._next))
        value: bytes | None = await connection.send("GET", key)
        return value

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in self._slots:
            if connection is not None:
                connection.close()
