"""uvicorn's httptools protocol, with each response written to the socket in one system call.

uvicorn writes a response's status line and headers when the app sends them, and its body when
the app sends that: two writes to the socket, and with uvloop two system calls, two TCP segments
and two wake-ups of the client, for a reply of a hundred bytes. py-spy put those writes at a
quarter of a tracking worker's time under single-ping load. Here the connection's writes wait
until the end of the event loop's turn and go out together: the headers and the body of a reply
sent without an await between them (and the replies of pipelined requests) in one write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport whose writes of one event-loop turn reach the socket as one write. Everything
    else is the wrapped transport's; closing writes what waits first, aborting drops it."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def writelines(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        # pause_reading, resume_reading, is_closing, get_extra_info, set_protocol, ...: nothing
        # that writes (every way to write is above, so none passes what waits).
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
