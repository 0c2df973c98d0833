"""A small PromQL reader for the deployment checks: which metrics and labels an expression
names. Enough for the expressions of deploy/ (selectors, aggregations with ``by``/``without``,
functions, range vectors, binary operators), not a full parser."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
KEYWORDS |= {"group_left", "group_right", "inf", "nan"}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*\"((?:[^\"\\]|\\.)*)\"")
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@dataclass
class Names:
    """The metrics an expression reads, with the labels each selector matches on, and the
    labels it groups by."""

    metrics: dict[str, set[str]] = field(default_factory=dict)
    grouping: set[str] = field(default_factory=set)


def balanced(expr: str) -> bool:
    """Brackets of every kind open and close in order (outside strings)."""
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr):
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack


def names(expr: str) -> Names:
    """The metric names, selector labels and grouping labels of ``expr``."""
    found = Names()
    for _, labels in GROUPING.findall(expr):
        found.grouping |= {x.strip() for x in labels.split(",") if x.strip()}
    rest = GROUPING.sub(" ", expr)
    # Each selector belongs to the metric name just before it (or to none: {__name__=...}).
    for match in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}", rest):
        labels = {m[0] for m in MATCHER.findall(match.group(2))}
        if match.group(1) and match.group(1) not in KEYWORDS:
            found.metrics.setdefault(match.group(1), set()).update(labels)
    rest = re.sub(r'"(?:[^"\\]|\\.)*"', " ", SELECTOR.sub(" ", rest))
    rest = re.sub(r"\[[^\]]*\]", " ", rest)  # range durations
    for match in NAME.finditer(rest):
        word, after = match.group(0), rest[match.end() :].lstrip()[:1]
        if after == "(" or word.lower() in KEYWORDS or re.fullmatch(r"\d.*", word):
            continue  # a function, an aggregation, an operator keyword
        found.metrics.setdefault(word, set())
    return found
