"""Checks run on worker threads, bounded, so the event loop keeps answering while files are verified.

`workers` checks run at once (numpy, OpenCV, FFmpeg and onnxruntime release the GIL for their heavy
parts); up to `queue` more uploads wait for a worker. An upload is admitted before its first byte is
read and holds its slot until its answer is sent, so at most workers + queue files are ever on disk;
one more is refused at once (503, try again) rather than left waiting without end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from faceswap.serve.upload import Refusal

T = TypeVar("T")


class CheckPool:
    def __init__(self, workers: int, queue: int) -> None:
        self.workers = workers
        self.capacity = workers + queue
        self.active = 0  # touched only on the event loop's thread
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="faceswap-check")

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Admission for one upload, from its first byte to its answer."""
        if self.active >= self.capacity:
            raise Refusal(503, f"busy: {self.active} files are being checked; try again in a minute")
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1

    def submit(self, work: Callable[[], T]) -> asyncio.Future[Any]:
        return asyncio.wrap_future(self._executor.submit(work))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
