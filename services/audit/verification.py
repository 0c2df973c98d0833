"""Verification of the whole log: chains read in ranges of positions, checkpoints checked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from services.audit.chain import Problem, Walk
from services.audit.checkpoints import checkpoint_valid
from services.audit.repository import Repositories

Progress = Callable[[str, int, str], None]  # (chain, last good seq, its hash) after each batch


@dataclass
class Report:
    """What a verification found: per-chain heads reached and the first problem of each."""

    records: int = 0
    chains: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    checkpoints: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "checkpoints_checked": self.checkpoints,
            "chains": self.chains,
            "first_problem": asdict(self.problems[0]) if self.problems else None,
            "problems": [asdict(p) for p in self.problems],
        }


@dataclass
class Verifier:
    """Walks every chain from genesis, a saved position or the latest valid checkpoint."""

    repos: Repositories
    public_key: bytes | None
    batch: int = 5000
    progress: Progress | None = None

    async def run(
        self,
        start: dict[str, tuple[int, str]] | None = None,
        *,
        from_checkpoint: bool = False,
        only: str | None = None,
        checkpoints: list[dict[str, Any]] | None = None,
    ) -> Report:
        """Verify every chain (or ``only``); ``checkpoints`` replaces the stored ones."""
        heads = await self.repos.records.all_heads()
        by_chain: dict[str, list[dict[str, Any]]] = {}
        if checkpoints is None:
            checkpoints = await self.repos.checkpoints.page(None, None)
        for cp in sorted(checkpoints, key=lambda c: int(c["seq"])):
            by_chain.setdefault(str(cp["chain"]), []).append(cp)
        report = Report()
        for name in sorted(set(heads) | set(by_chain)):
            if only is None or name == only:
                cps = by_chain.get(name, [])
                walk = self._start(name, cps, (start or {}).get(name), from_checkpoint)
                top = max([heads.get(name, (0, ""))[0], *(int(c["seq"]) for c in cps)])
                problem = await self._chain(walk, cps, top, report)
                report.chains[name] = walk.seq
                if problem is not None:
                    report.problems.append(problem)
        return report

    def _start(
        self,
        name: str,
        cps: list[dict[str, Any]],
        saved: tuple[int, str] | None,
        from_checkpoint: bool,
    ) -> Walk:
        if saved is not None:
            return Walk(name, saved[0], saved[1])
        if from_checkpoint and self.public_key is not None:
            valid = [c for c in cps if checkpoint_valid(c, self.public_key)]
            if valid:
                return Walk(name, int(valid[-1]["seq"]), str(valid[-1]["hash"]))
        return Walk(name)

    async def _chain(
        self, walk: Walk, cps: list[dict[str, Any]], top: int, report: Report
    ) -> Problem | None:
        marks = {int(c["seq"]): c for c in cps if int(c["seq"]) > walk.seq}
        while True:
            first = walk.seq + 1
            records = await self.repos.records.span(walk.chain, first, first + self.batch - 1)
            if not records:
                return walk.end(top)
            for rec in records:
                problem = walk.step(rec) or self._mark(walk, marks.get(walk.seq), report)
                if problem is not None:
                    return problem
                report.records += 1
            if self.progress is not None:
                self.progress(walk.chain, walk.seq, walk.hash)

    def _mark(self, walk: Walk, cp: dict[str, Any] | None, report: Report) -> Problem | None:
        """Check the signed checkpoint at the walk's position, if there is one."""
        if cp is None or self.public_key is None:
            return None
        report.checkpoints += 1
        if not checkpoint_valid(cp, self.public_key):
            detail = "checkpoint signature does not verify"
            return Problem(walk.chain, walk.seq, "signature", detail, None)
        if str(cp["hash"]) != walk.hash:
            detail = "chain differs from the signed checkpoint (rewritten history)"
            return Problem(walk.chain, walk.seq, "signature", detail, None)
        return None
