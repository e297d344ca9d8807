"""HTTP/1.1 on asyncio streams: one client connection, its requests parsed, its responses sent (chunked for SSE)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from fake_upstream.wire import reason_phrase

MAX_HEAD_BYTES = 64 * 1024
READ_SIZE = 64 * 1024


class BadRequest(Exception):
    """The bytes received are not an HTTP/1.1 request we can parse."""


class ClientGone(Exception):
    """The client closed the connection."""


class StopConnection(Exception):
    """The response ended in a way that leaves the connection unusable (closed or reset)."""


@dataclass
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        return "close" not in self.headers.get("connection", "").lower()


class HttpConnection:
    """One client connection: buffered request parsing, chunked responses, disconnect detection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()
        self.eof = False

    async def _fill(self) -> bool:
        """Read more bytes into the buffer; False at end of stream."""
        if self.eof:
            return False
        try:
            data = await self.reader.read(READ_SIZE)
        except ConnectionError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    async def watch_eof(self) -> None:
        """Return when the client closes its side (bytes it sends meanwhile are kept for the next request)."""
        while await self._fill():
            pass

    async def _read_until(self, marker: bytes, limit: int) -> bytes:
        while (index := self.buffer.find(marker)) < 0:
            if len(self.buffer) > limit:
                raise BadRequest("request head too large")
            if not await self._fill():
                raise ClientGone
        end = index + len(marker)
        data = bytes(self.buffer[:end])
        del self.buffer[:end]
        return data

    async def _read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not await self._fill():
                raise ClientGone
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    async def _read_chunked_body(self) -> bytes:
        body = bytearray()
        while True:
            size_line = await self._read_until(b"\r\n", MAX_HEAD_BYTES)
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError as err:
                raise BadRequest("bad chunk size") from err
            if size == 0:
                while await self._read_until(b"\r\n", MAX_HEAD_BYTES) != b"\r\n":
                    pass  # trailers, ignored
                return bytes(body)
            body += await self._read_exactly(size)
            if await self._read_exactly(2) != b"\r\n":
                raise BadRequest("bad chunk terminator")

    async def read_request(self) -> HttpRequest | None:
        """The next request on the connection, or None when the client closed it between requests."""
        while not self.buffer:
            if not await self._fill():
                return None
        head = (await self._read_until(b"\r\n\r\n", MAX_HEAD_BYTES)).decode("latin-1")
        request_line, *header_lines = head.rstrip("\r\n").split("\r\n")
        try:
            method, target, version = request_line.split(" ")
        except ValueError as err:
            raise BadRequest(f"bad request line {request_line!r}") from err
        if not version.startswith("HTTP/1."):
            raise BadRequest(f"unsupported version {version!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise BadRequest(f"bad header line {line!r}")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        if headers.get("expect", "").lower() == "100-continue":
            await self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked_body()
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError as err:
                raise BadRequest("bad content-length") from err
            body = await self._read_exactly(length)
        return HttpRequest(method=method, path=target.split("?", 1)[0], headers=headers, body=body)

    async def write(self, data: bytes) -> None:
        """Write and drain at once, so each piece leaves promptly; ClientGone if the client is gone."""
        if self.writer.is_closing():
            raise ClientGone
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as err:
            raise ClientGone from err

    @staticmethod
    def _head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
        lines = [f"HTTP/1.1 {status} {reason_phrase(status)}", f"Date: {formatdate(usegmt=True)}"]
        lines += [f"{name}: {value}" for name, value in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send_json(self, status: int, body: Any, headers: Mapping[str, str], keep_alive: bool) -> None:
        payload = json.dumps(body).encode()
        all_headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("Connection", "keep-alive" if keep_alive else "close"),
            *headers.items(),
        ]
        await self.write(self._head(status, all_headers) + payload)

    async def start_event_stream(self, headers: Mapping[str, str], keep_alive: bool = True) -> None:
        all_headers = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "keep-alive" if keep_alive else "close"),
            ("Cache-Control", "no-cache"),
            *headers.items(),
        ]
        await self.write(self._head(200, all_headers))

    async def send_chunk(self, data: bytes) -> None:
        await self.write(b"%x\r\n%s\r\n" % (len(data), data))

    async def end_chunks(self) -> None:
        await self.write(b"0\r\n\r\n")

    def reset(self) -> None:
        """Abort the TCP connection with a RST (SO_LINGER 0), not a FIN."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
