"""Receiving one file: streamed to a private temporary folder, counted and refused as it arrives.

The size limit holds while the bytes come in (a declared length over it is refused before any is
read); nothing is buffered whole in memory. The type comes from the first bytes, never from the
name or the Content-Type the sender claims. The caller owns the folder and deletes it."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from faceswap.serve.config import ServeConfig
from faceswap.serve.media_types import ACCEPTED_LABEL, HEAD_BYTES, MediaType, sniff

FORM_FIELD = "file"
FORM_SLACK = 64 * 1024  # multipart boundaries, headers and small fields around the file
MAX_NAME = 200


class Refusal(Exception):
    """An upload refused with an HTTP status and one line for the sender."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Upload:
    path: Path
    name: str  # what the sender called it: shown back to them, never used as a path
    size: int
    sha256: str
    media: MediaType


class FileSink:
    """Writes the file part: sniffs its first bytes, then streams to disk, counting and hashing."""

    def __init__(self, folder: Path, limit: int, label: str) -> None:
        self.folder, self.limit, self.label = folder, limit, label
        self.head = b""
        self.size = 0
        self.digest = hashlib.sha256()
        self.media: MediaType | None = None
        self.path: Path | None = None
        self._handle: IO[bytes] | None = None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise Refusal(413, f"the file is larger than this page accepts ({self.label})")
        self.digest.update(data)
        if self._handle is None:
            self.head += data
            if len(self.head) >= HEAD_BYTES:
                self._open()
        else:
            self._handle.write(data)

    def _open(self) -> None:
        self.media = sniff(self.head)
        if self.media is None:
            raise Refusal(415, f"not a file this page reads: it takes {ACCEPTED_LABEL}")
        self.path = self.folder / f"upload{self.media.suffix}"
        self._handle = open(self.path, "xb")  # noqa: SIM115 - closed in finish() or by the folder's removal
        self._handle.write(self.head)

    def finish(self, name: str) -> Upload:
        if self.size == 0:
            raise Refusal(422, "the upload is empty")
        if self._handle is None:
            self._open()
        assert self._handle is not None and self.path is not None and self.media is not None
        self._handle.close()
        return Upload(self.path, clean_name(name), self.size, self.digest.hexdigest(), self.media)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def clean_name(name: str) -> str:
    """The sender's file name as plain text (last path part, printable, bounded)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    printable = "".join(ch for ch in base if ch.isprintable())
    return printable[:MAX_NAME] or "upload"


class MultipartFile:
    """The one file part of a multipart/form-data body, fed chunk by chunk."""

    def __init__(self, boundary: bytes, sink: FileSink) -> None:
        from python_multipart.multipart import MultipartParser

        self.sink = sink
        self.name: str | None = None
        self._field = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}
        self._in_file = False
        self._files = 0
        callbacks: Any = {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._grow("_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._grow("_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
        }
        self.parser = MultipartParser(boundary, callbacks)

    def _grow(self, attr: str, data: bytes) -> None:
        setattr(self, attr, getattr(self, attr) + data)

    def _part_begin(self) -> None:
        self._headers, self._in_file = {}, False

    def _header_end(self) -> None:
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name") == FORM_FIELD.encode() and b"filename" in options:
            self._files += 1
            if self._files > 1:
                raise Refusal(422, "send one file at a time")
            self._in_file = True
            self.name = options[b"filename"].decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.sink.write(data[start:end])

    def feed(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except Refusal:
            raise
        except Exception as error:  # noqa: BLE001 - python-multipart's parse errors: a malformed form
            raise Refusal(422, f"the form could not be read ({type(error).__name__})") from None

    def finish(self) -> Upload:
        self.parser.finalize()
        if self.name is None:
            raise Refusal(422, f"no file in the form (send it as the '{FORM_FIELD}' field)")
        return self.sink.finish(self.name)


async def chunks(stream: AsyncIterator[bytes], idle_s: float) -> AsyncIterator[bytes]:
    """The body's chunks; a sender silent for `idle_s` is cut off (it would hold a slot)."""
    iterator = stream.__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(iterator.__anext__(), idle_s)
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            raise Refusal(408, f"the upload stalled (nothing received for {idle_s:g} s)") from None
        if chunk:
            yield chunk


async def receive(request: Any, config: ServeConfig, folder: Path) -> Upload:
    """Stream the request's file (a multipart form's 'file' field, or the raw body) into `folder`."""
    content_type = request.headers.get("content-type", "")
    multipart = content_type.lower().startswith("multipart/form-data")
    declared = request.headers.get("content-length")
    allowed = config.max_upload_bytes + (FORM_SLACK if multipart else 0)
    if declared is not None and declared.isdigit() and int(declared) > allowed:
        raise Refusal(413, f"the file is larger than this page accepts ({config.max_upload_label})")
    sink = FileSink(folder, config.max_upload_bytes, config.max_upload_label)
    try:
        form = MultipartFile(_boundary(content_type), sink) if multipart else None
        received = 0
        async for chunk in chunks(request.stream(), config.read_timeout_s):
            received += len(chunk)
            if received > allowed:
                raise Refusal(413, f"the file is larger than this page accepts ({config.max_upload_label})")
            if form is not None:
                form.feed(chunk)
            else:
                sink.write(chunk)
        if form is not None:
            return form.finish()
        return sink.finish(request.query_params.get("name") or request.headers.get("x-file-name") or "upload")
    finally:
        sink.close()


def _boundary(content_type: str) -> bytes:
    from python_multipart.multipart import parse_options_header

    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise Refusal(422, "a multipart form without a boundary")
    return boundary
