"""`gardien up` rewrites `<home>/up.json` whenever a member restarts, while other commands
(`gardien publish`, the replica benchmark, an operator's script) read it: a reader must see
the old file or the new one, never an empty or half-written one."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from shared.files import write_atomic


def test_a_state_file_read_while_it_is_rewritten_is_always_whole(tmp_path: Path) -> None:
    path = tmp_path / "up.json"
    states = [json.dumps({"children": {f"m{i}": i for i in range(n)}}) for n in (200, 400)]
    write_atomic(path, states[0])
    done, seen, broken = threading.Event(), [0], []

    def read() -> None:
        while not done.is_set():
            text = path.read_text()
            seen[0] += 1
            if text not in states:
                broken.append(len(text))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(2000):
            write_atomic(path, states[n % 2])
    finally:
        done.set()
        reader.join()
    assert seen[0] > 100 and not broken, f"{len(broken)} of {seen[0]} reads were partial"
    assert [p.name for p in tmp_path.iterdir()] == ["up.json"]  # no part file left
