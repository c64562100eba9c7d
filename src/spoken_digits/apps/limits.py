"""The live-listening WebSocket's limits, and the `serve` options that set them.

A module of its own, free of the web stack, so the command line can declare the options without
importing FastAPI.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field


def _stream_workers() -> int:
    """Half the machine's cores (at least one): streams never take the CPU the uploads need."""
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass(frozen=True)
class StreamLimits:
    """What one server allows its live streams (/api/listen); each limit closes the socket with a reason.

    max_streams: streams open at once; one more is closed with code 1013 (try again later).
    max_seconds: a stream ends after this many seconds of audio or of connection, whichever comes first.
    max_words: words a stream keeps; reaching it ends the stream (send {"type": "clear"} before to go on).
    idle_seconds: a stream that sends nothing for this long is closed.
    allow_origins: web origins allowed besides the server's own (scheme://host[:port]; "*" for any).
    workers: threads the streams share, apart from the uploads' pool.
    """

    max_streams: int = 16
    max_seconds: float = 1800.0
    max_words: int = 1000
    idle_seconds: float = 60.0
    allow_origins: tuple[str, ...] = ()
    workers: int = field(default_factory=_stream_workers)

    def __post_init__(self) -> None:
        for name in ("max_streams", "max_seconds", "max_words", "idle_seconds", "workers"):
            if not getattr(self, name) > 0:
                raise ValueError(f"stream limit {name} must be positive, got {getattr(self, name)!r}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> StreamLimits:
        """The limits `add_options` parsed."""
        return cls(
            max_streams=args.max_streams,
            max_seconds=args.max_session,
            max_words=args.max_words,
            idle_seconds=args.idle,
            allow_origins=tuple(args.allow_origin or ()),
            workers=args.stream_workers or _stream_workers(),
        )


def _positive(kind: type[int] | type[float]):  # an argparse type
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its errors
    return parse


def add_options(parser: argparse.ArgumentParser) -> None:
    """`serve`'s options for live streams (defaults: StreamLimits)."""
    d = StreamLimits()
    g = parser.add_argument_group("live listening (the /api/listen WebSocket)")
    g.add_argument(
        "--max-streams", type=_positive(int), default=d.max_streams,
        help=f"streams open at once; more are closed with code 1013 (default: {d.max_streams})",
    )  # fmt: skip
    g.add_argument(
        "--max-session", type=_positive(float), default=d.max_seconds, metavar="SECONDS",
        help=f"a stream ends after this much audio or connection time (default: {d.max_seconds:g})",
    )  # fmt: skip
    g.add_argument(
        "--max-words", type=_positive(int), default=d.max_words,
        help=f"words a stream keeps before it ends; a clear starts again (default: {d.max_words})",
    )  # fmt: skip
    g.add_argument(
        "--idle", type=_positive(float), default=d.idle_seconds, metavar="SECONDS",
        help=f"close a stream that sends nothing for this long (default: {d.idle_seconds:g})",
    )  # fmt: skip
    g.add_argument(
        "--allow-origin", action="append", metavar="ORIGIN",
        help="let pages from ORIGIN (e.g. http://localhost:3000; * for any) stream too; repeatable "
        "(default: only pages the server itself serves)",
    )  # fmt: skip
    g.add_argument(
        "--stream-workers", type=_positive(int), default=None, metavar="N",
        help=f"threads the streams share, apart from uploads (default: half the cores, here {d.workers})",
    )  # fmt: skip
