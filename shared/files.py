"""Files that other processes read while this one rewrites them."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` in one step: a reader sees the old file or the new one,
    never an empty or half-written one (``write_text`` truncates first). ``mode`` is set on
    the new file before it takes the name."""
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    part.write_text(text)
    if mode is not None:
        os.chmod(part, mode)
    os.replace(part, path)
