"""The README's configuration table lists exactly the settings the code reads."""

from __future__ import annotations

import re

from shared.settings import Settings
from tests.support import REPO


def test_readme_configuration_table_matches_settings() -> None:
    readme = (REPO / "README.md").read_text()
    table = readme.split("| variable | default | meaning |", 1)[1].split("\n\n", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}
