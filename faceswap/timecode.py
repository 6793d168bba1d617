"""SMPTE timecode: parsing, frame arithmetic (drop-frame included) and formatting.

A timecode counts frames at a nominal integer rate (30 for 29.97); drop-frame skips frame numbers
0 and 1 (0-3 at 60) each minute except every tenth, so the count tracks wall-clock time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from faceswap.errors import BadInput

PATTERN = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")


@dataclass(frozen=True)
class Timecode:
    frame: int  # frames since 00:00:00:00 at the nominal rate
    rate: int  # nominal frames per second (30 for 29.97)
    drop: bool = False

    @classmethod
    def parse(cls, text: str, fps: Fraction | float) -> Timecode:
        """`HH:MM:SS:FF` (`;` before FF: drop-frame) at the clip's frame rate."""
        match = PATTERN.match(text.strip())
        rate = max(1, int(round(float(fps))))
        if match is None:
            raise BadInput(f"timecode {text!r} is not HH:MM:SS:FF")
        hours, minutes, seconds, sep, frames = match.groups()
        drop = sep in ";,"
        if drop and rate % 30:
            raise BadInput(f"drop-frame timecode {text!r} needs a 29.97 or 59.94 frame rate")
        h, m, s, f = int(hours), int(minutes), int(seconds), int(frames)
        if m > 59 or s > 59 or f >= rate:
            raise BadInput(f"timecode {text!r} is out of range at {rate} fps")
        count = (h * 3600 + m * 60 + s) * rate + f
        if drop:
            total_minutes = 60 * h + m
            count -= _dropped(rate) * (total_minutes - total_minutes // 10)
        return cls(count, rate, drop)

    def __add__(self, frames: int) -> Timecode:
        return Timecode(self.frame + frames, self.rate, self.drop)

    def fields(self) -> tuple[int, int, int, int]:
        """(hours, minutes, seconds, frames), wrapping at 24 hours."""
        count = self.frame
        if self.drop:
            drop = _dropped(self.rate)
            per_ten = self.rate * 600 - drop * 9
            per_minute = self.rate * 60 - drop
            tens, rest = divmod(count, per_ten)
            count += drop * 9 * tens + (drop * ((rest - drop) // per_minute) if rest > drop else 0)
        frames = count % self.rate
        seconds = count // self.rate
        return (seconds // 3600) % 24, (seconds // 60) % 60, seconds % 60, frames

    def __str__(self) -> str:
        h, m, s, f = self.fields()
        return f"{h:02d}:{m:02d}:{s:02d}{';' if self.drop else ':'}{f:02d}"


def _dropped(rate: int) -> int:
    return 2 * (rate // 30)


def container_timecode(container: Any) -> str | None:
    """The start timecode an open container declares (tmcd track, stream or container metadata)."""
    streams = [*container.streams.data, *container.streams.video]
    for item in [*(s.metadata for s in streams), container.metadata]:
        value = item.get("timecode")
        if value and PATTERN.match(value.strip()):
            return value.strip()
    return None
