"""A ZIP archive written as a stream of bytes (pure: no file, no seek).

``zipfile`` writes to a sink that cannot seek (no ``tell``/``seek``) by putting each
entry's sizes and CRC in a data descriptor after its data, so nothing has to be rewritten:
the bytes it produces can be handed on as they come. ``ZipStream`` collects them and gives
them back after each call, so the caller streams the archive with memory bounded by one
piece of input plus the compressor's window.
"""

from __future__ import annotations

import zipfile
from datetime import datetime
from typing import IO


class _Sink:
    """Where zipfile writes: a list of pieces, taken away by the caller (no ``tell``)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


class ZipStream:
    """Entries written one after the other; each method returns the bytes now ready."""

    def __init__(self, compression: int = zipfile.ZIP_DEFLATED, level: int = 6) -> None:
        self._sink = _Sink()
        self._zip = zipfile.ZipFile(
            self._sink,
            "w",
            compression=compression,
            compresslevel=level,
        )
        self._entry: IO[bytes] | None = None

    def start(self, name: str, when: datetime) -> bytes:
        """Open entry ``name`` (dated ``when``); the previous one must be ended."""
        if self._entry is not None:
            raise RuntimeError("end the current entry first")
        info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
        info.compress_type = self._zip.compression
        info.external_attr = 0o644 << 16
        self._entry = self._zip.open(info, "w", force_zip64=True)
        return self._sink.take()

    def write(self, data: bytes) -> bytes:
        """Add ``data`` to the open entry."""
        if self._entry is None:
            raise RuntimeError("no entry is open")
        self._entry.write(data)
        return self._sink.take()

    def end(self) -> bytes:
        """Close the open entry (its data descriptor follows)."""
        if self._entry is not None:
            self._entry.close()
            self._entry = None
        return self._sink.take()

    def entry(self, name: str, when: datetime, data: bytes) -> bytes:
        """A whole small entry at once."""
        return self.start(name, when) + self.write(data) + self.end()

    def close(self) -> bytes:
        """The central directory: the archive is complete."""
        ended = self.end()
        self._zip.close()
        return ended + self._sink.take()
