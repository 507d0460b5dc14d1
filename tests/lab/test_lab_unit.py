"""The lab's pure parts: the embedded seed example, arping parsing, percentiles."""

from __future__ import annotations

from pathlib import Path

from ironlb.lab.cluster import SEED_CONFIG, SEED_SERVICE, parse_arping
from ironlb.lab.failover import percentile
from ironlb.plan import plan_files
from tests.support.announce import pinned_service

ROOT = Path(__file__).resolve().parents[2]


def test_embedded_seed_is_the_examples_seed() -> None:
    assert (ROOT / "examples" / "metallb-config.yaml").read_text() == SEED_CONFIG
    assert (ROOT / "examples" / "my-service.yaml").read_text() == SEED_SERVICE


def test_pinned_service_gets_its_ip(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(SEED_CONFIG)
    (tmp_path / "svc.yaml").write_text(SEED_SERVICE)
    (tmp_path / "pinned.yaml").write_text(pinned_service("bench-1", "192.168.1.245"))
    result, _ = plan_files([str(p) for p in sorted(tmp_path.iterdir())], namespace="metallb-system", lb_class="")
    assert result["services"]["default/my-service"]["ingress"] == ["192.168.1.240"]
    assert result["services"]["default/bench-1"]["ingress"] == ["192.168.1.245"]


def test_parse_arping() -> None:
    out = (
        "ARPING 192.168.1.240\n"
        "Timeout\n"
        "42 bytes from 02:00:00:00:00:0B (192.168.1.240): index=0 time=5.207 usec\n"
        "42 bytes from 02:00:00:00:00:0c (192.168.1.240): index=1 time=1.2 msec\n"
        "\n--- 192.168.1.240 statistics ---\n"
    )
    parsed = parse_arping(out)
    assert [mac for mac, _ in parsed] == ["02:00:00:00:00:0b", "02:00:00:00:00:0c"]
    assert parsed[0][1].startswith("42 bytes from 02:00:00:00:00:0B")
    assert parse_arping("Timeout\n") == []


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10.0
    assert percentile(values, 95) == 19.0
    assert percentile(values, 100) == 20.0
    assert percentile([3.0], 95) == 3.0
