"""The ZIP written as a stream: valid archives, bytes out as they come."""

from __future__ import annotations

import io
import os
import zipfile
from datetime import UTC, datetime

import pytest

from services.erasure.zipstream import ZipStream

WHEN = datetime(2027, 3, 6, 9, 30, 12, tzinfo=UTC)


def test_entries_written_in_pieces_read_back_with_zipfile() -> None:
    zipped, out = ZipStream(), bytearray()
    out += zipped.start("crm/records.json", WHEN)
    for i in range(100):
        out += zipped.write(f'{{"n": {i}}}\n'.encode())
    out += zipped.end()
    out += zipped.entry("manifest.json", WHEN, b'{"format": 1}')
    out += zipped.close()
    archive = zipfile.ZipFile(io.BytesIO(bytes(out)))
    assert archive.testzip() is None
    assert archive.namelist() == ["crm/records.json", "manifest.json"]
    assert archive.read("manifest.json") == b'{"format": 1}'
    assert archive.read("crm/records.json").count(b"\n") == 100
    assert archive.getinfo("manifest.json").date_time == (2027, 3, 6, 9, 30, 12)


def test_bytes_are_handed_on_while_an_entry_is_written() -> None:
    zipped, handed = ZipStream(), []
    zipped.start("big.bin", WHEN)
    for _ in range(64):  # 16 MiB of noise: deflate cannot shrink it, so output flows
        handed.append(len(zipped.write(os.urandom(256 * 1024))))
    handed.append(len(zipped.end()))
    assert sum(1 for n in handed[:-1] if n > 0) > 32  # not held until the end
    assert sum(handed) > 16 * 1024 * 1024
    assert len(zipped.close()) < 1024  # only the central directory remains


def test_misuse_is_refused() -> None:
    zipped = ZipStream()
    with pytest.raises(RuntimeError, match="no entry"):
        zipped.write(b"x")
    zipped.start("a", WHEN)
    with pytest.raises(RuntimeError, match="end the current entry"):
        zipped.start("b", WHEN)
