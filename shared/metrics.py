"""A few process counters in the Prometheus text format; labels never carry personal data."""

from __future__ import annotations

from collections import Counter


class Metrics:
    """Counters keyed by (name, topic) with a text exposition."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.counts: Counter[tuple[str, str]] = Counter()

    def inc(self, name: str, topic: str = "") -> None:
        self.counts[(name, topic)] += 1

    def exposition(self) -> str:
        """The counters as Prometheus text."""
        lines = []
        for (name, topic), value in sorted(self.counts.items()):
            labels = f'service="{self.service}"' + (f',topic="{topic}"' if topic else "")
            lines.append(f"gardien_{name}_total{{{labels}}} {value}")
        return "\n".join(lines) + "\n"
