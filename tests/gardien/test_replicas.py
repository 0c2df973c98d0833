"""`gardien up --replicas N`: the members it plans, the counts it refuses, and a small replica
run (2 members per service, one member stopped and restarted while traffic flows) whose every
correctness check holds (bench/replicas.py, bench/replica_checks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.common import Stack
from gardien.cli import app
from gardien.launcher import MAX_REPLICAS, Child, Launcher, check_replicas
from shared.settings import Settings
from shared.topics import INBOUND, INTERNAL, PARTITIONS


def launcher(tmp_path: Path, replicas: int) -> Launcher:
    return Launcher(
        home=tmp_path,
        http_host="127.0.0.1",
        http_port=8000,
        own_broker=False,
        own_mongo=False,
        bootstrap="127.0.0.1:9",
        mongodb_uri="mongodb://127.0.0.1:9",
        base_port=8100,
        replicas=replicas,
        extra_env={"GARDIEN_PSEUDONYM_KEY": "0" * 64},
    )


def test_each_member_is_its_own_process_on_its_own_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Child, "start", lambda self: None)
    up = launcher(tmp_path, 3)
    up.start_children()
    members = {c.name: c for c in up.children if c.name != "api"}
    assert sorted(members) == sorted(
        f"{s}{suffix}"
        for s in ("intake", "deadlines", "erasure", "audit")
        for suffix in ("", "-2", "-3")
    )
    ports = {c.env["GARDIEN_SERVICE_PORT"] for c in members.values()}
    assert len(ports) == len(members)  # no two members share a port
    assert members["audit-3"].argv[-2:] == ["service", "audit"]
    assert members["audit-3"].env["GARDIEN_SERVICE_PORT"] == "8124"
    assert members["intake-2"].env["GARDIEN_SERVICE_PORT"] == "8111"
    # The gateway talks to member 1 of each service.
    api = next(c for c in up.children if c.name == "api")
    assert api.env["GARDIEN_AUDIT_URL"] == "http://127.0.0.1:8104"


def test_one_replica_keeps_the_single_member_layout(tmp_path: Path) -> None:
    assert launcher(tmp_path, 1).member_ports() == {
        "intake": 8101,
        "deadlines": 8102,
        "erasure": 8103,
        "audit": 8104,
    }


def test_more_members_than_partitions_are_refused() -> None:
    assert min(PARTITIONS[t] for t in INBOUND + INTERNAL) == MAX_REPLICAS
    assert check_replicas(MAX_REPLICAS) is None
    assert "partitions" in str(check_replicas(MAX_REPLICAS + 1))
    assert check_replicas(0) is not None
    result = CliRunner().invoke(app, ["up", "--replicas", str(MAX_REPLICAS + 1)])
    assert result.exit_code == 2
    assert "partitions" in result.output


@pytest.mark.e2e
def test_two_members_per_service_stay_correct_through_a_rebalance(own_broker: Settings) -> None:
    """A few dozen items; member 2 of every service stopped at 30% and started again."""
    from bench.replicas import run

    st = Stack(own_broker.kafka_bootstrap_servers, own_broker.mongodb_uri)
    result = run(st, replicas=2, requests=16, contracts=4, stall=45, rejoin=False)
    assert result["completed"] == result["items"] == 16 + 8 + 4, result
    assert result["stopped_at_s"] is not None, result
    checks = result["checks"]
    assert checks["ok"], checks
    counts = checks["counts"]
    assert counts["cases_closed"] == 8 + 4 and counts["commands"] == 2 * (8 + 4), counts
    assert counts["retention_firings"] >= 4, counts


def test_topics_with_fewer_partitions_than_members_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gardien.launcher as launcher_module

    async def ensure(bootstrap: str, wanted: dict[str, int]) -> list[str]:
        return []

    async def counts(bootstrap: str, names: list[str]) -> dict[str, int]:
        return {name: 2 if name == "gardien.erasure.work.v1" else 6 for name in names}

    monkeypatch.setattr(launcher_module, "ensure_topics", ensure)
    monkeypatch.setattr(launcher_module, "partition_counts", counts)
    launcher(tmp_path, 2).ensure_topics()  # 2 members, 2 partitions: fine
    with pytest.raises(SystemExit, match=r"gardien\.erasure\.work\.v1"):
        launcher(tmp_path, 3).ensure_topics()
