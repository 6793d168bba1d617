"""What `faceswap serve` accepts and how much it does at once: one set of limits, stated on the page."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from faceswap.errors import FaceswapError
from faceswap.workspace import Workspace

MiB = 1024 * 1024


def default_workers() -> int:
    """Checks run at once: verify is CPU bound, so about one per core (at most 4)."""
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class ServeConfig:
    workspace: Workspace
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 256 * MiB
    workers: int = field(default_factory=default_workers)
    queue: int = 32  # uploads that may wait for a worker; beyond workers + queue: 503
    read_timeout_s: float = 60.0  # a client that sends nothing for this long is cut off (408)
    max_image_pixels: int = 40_000_000  # decoded at full size: ~120 MB of pixels per image
    max_video_pixels: int = 4096 * 2160  # per frame; verify keeps up to 56 frames of a video
    max_video_frames: int = 18_000  # 10 minutes at 30 frames/s: verify decodes every frame
    tmp_root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    access_log: bool = False  # off: the server keeps no record of who sent what

    @classmethod
    def checked(
        cls,
        workspace: Workspace,
        host: str,
        port: int,
        max_upload_mb: float,
        workers: int,
        queue: int,
        access_log: bool,
    ) -> ServeConfig:
        """The operator's flags, refused with one line when out of range."""
        if max_upload_mb <= 0 or workers < 1 or queue < 0 or not 0 <= port <= 65535:
            raise FaceswapError("--max-upload-mb and --workers must be positive, --queue not negative, --port 0-65535")
        upload = int(max_upload_mb * MiB)
        return cls(workspace, host, port, upload, workers, queue, access_log=access_log)

    @property
    def max_upload_label(self) -> str:
        return f"{self.max_upload_bytes / MiB:g} MB"

    @property
    def in_flight(self) -> int:
        """Uploads held at once (receiving, waiting or being checked): disk use <= this x the size limit."""
        return self.workers + self.queue
