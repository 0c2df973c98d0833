"""The chaos scenarios are scripts (`python -m tests.chaos.<name>`), not pytest tests."""

collect_ignore_glob = ["*.py"]
