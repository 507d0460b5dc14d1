"""The chart's PrometheusRule checked by Prometheus's own `promtool` (scripts/build-promtool.sh): `promtool check
rules` accepts the rendered rules, and `promtool test rules` fires each alert from the series that should fire it
(and not from healthy ones, other namespaces, a value at the threshold or before its `for` has passed), with its
labels and its annotations as Prometheus templates them. MetalLB's alert names, expressions and thresholds are the
contract (MetalLBStaleConfig, MetalLBConfigNotLoaded, MetalLBAddressPoolExhausted, MetalLBAddressPoolUsage75/85/95
Percent, MetalLBBGPSessionDown); ironlb's own are IronLBBFDSessionDown, IronLBNoQuorum,
IronLBMembershipDisagreement, and on its fast path's health IronLBFastPathLag and IronLBSlowFailureDetection."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.chart.test_chart import NS, find, template
from tests.support.gotools import promtool_binary

Labels = dict[str, str]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool_binary(), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def rendered_rules(tmp_path: Path) -> dict[str, Any]:
    """The chart's PrometheusRule with the default values (all alerts on), as a Prometheus rule file."""
    docs = template(tmp_path, {"prometheus": {"prometheusRule": {"enabled": True}}})
    spec: dict[str, Any] = find(docs, "PrometheusRule", "metallb")["spec"]
    return spec


def series(name: str, values: str, **labels: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted({"namespace": NS, **labels}.items()))
    return {"series": f"{name}{{{inner}}}", "values": values}


class Expect:
    """Builds promtool's expected alerts from the rendered rules: the series' labels plus the rule's, and the
    annotations as Prometheus renders ``{{ $labels.x }}``."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.rules = {r["alert"]: r for g in spec["groups"] for r in g["rules"]}
        self.fired: set[str] = set()

    def alert(self, name: str, **labels: str) -> dict[str, Any]:
        rule = self.rules[name]
        self.fired.add(name)
        labels = {"namespace": NS, **labels} if labels else {}
        return {
            "exp_labels": {**labels, **rule.get("labels", {})},
            "exp_annotations": {k: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m[1]], v)
                                for k, v in rule.get("annotations", {}).items()},
        }  # fmt: skip


def unit_tests(x: Expect) -> list[dict[str, Any]]:
    stale, loaded = "metallb_k8s_client_config_stale_bool", "metallb_k8s_client_config_loaded_bool"
    in_use, total = "metallb_allocator_addresses_in_use_total", "metallb_allocator_addresses_total"
    pools = {"full": (10, 10), "p96": (96, 100), "p90": (90, 100), "p80": (80, 100), "p75": (75, 100),
             "p50": (50, 100)}  # fmt: skip
    pool_series = [s for pool, (used, size) in pools.items()
                   for s in (series(in_use, f"{used}x10", pod="controller-1", pool=pool),
                             series(total, f"{size}x10", pod="controller-1", pool=pool))]  # fmt: skip
    other_ns = [series(in_use, "10x10", namespace="other", pod="c", pool="x"),
                series(total, "10x10", namespace="other", pod="c", pool="x")]  # fmt: skip

    def pool_alerts(name: str, *names: str) -> list[dict[str, Any]]:
        return [x.alert(name, pod="controller-1", pool=p) for p in names]

    return [
        {   # configuration: stale on one pod, never loaded on another, for 1 minute
            "interval": "15s",
            "input_series": [
                series(stale, "1x20", pod="controller-1"), series(stale, "0x20", pod="speaker-a"),
                series(stale, "1x20", namespace="other", pod="controller-9"),
                series(loaded, "0x20", pod="speaker-b"), series(loaded, "1x20", pod="controller-1"),
            ],
            "alert_rule_test": [
                {"eval_time": "30s", "alertname": "MetalLBStaleConfig", "exp_alerts": []},
                {"eval_time": "30s", "alertname": "MetalLBConfigNotLoaded", "exp_alerts": []},
                {"eval_time": "2m", "alertname": "MetalLBStaleConfig",
                 "exp_alerts": [x.alert("MetalLBStaleConfig", pod="controller-1")]},
                {"eval_time": "2m", "alertname": "MetalLBConfigNotLoaded",
                 "exp_alerts": [x.alert("MetalLBConfigNotLoaded", pod="speaker-b")]},
            ],
        },
        {   # pools: exhausted, and past each usage threshold (strictly: 75 of 100 is not past 75 %)
            "interval": "1m",
            "input_series": pool_series + other_ns,
            "alert_rule_test": [
                {"eval_time": "0m", "alertname": "MetalLBAddressPoolExhausted", "exp_alerts": []},
                {"eval_time": "2m", "alertname": "MetalLBAddressPoolExhausted",
                 "exp_alerts": pool_alerts("MetalLBAddressPoolExhausted", "full")},
                {"eval_time": "2m", "alertname": "MetalLBAddressPoolUsage75Percent",
                 "exp_alerts": pool_alerts("MetalLBAddressPoolUsage75Percent", "full", "p80", "p90", "p96")},
                {"eval_time": "2m", "alertname": "MetalLBAddressPoolUsage85Percent",
                 "exp_alerts": pool_alerts("MetalLBAddressPoolUsage85Percent", "full", "p90", "p96")},
                {"eval_time": "2m", "alertname": "MetalLBAddressPoolUsage95Percent",
                 "exp_alerts": pool_alerts("MetalLBAddressPoolUsage95Percent", "full", "p96")},
            ],
        },
        {   # sessions and quorum: the one down (or without quorum) fires, the healthy one does not
            "interval": "15s",
            "input_series": [
                series("metallb_bgp_session_up", "0x20", pod="speaker-a", peer="10.0.0.1:179"),
                series("metallb_bgp_session_up", "1x20", pod="speaker-a", peer="10.0.0.2:179"),
                series("metallb_bfd_session_up", "0x20", pod="speaker-b", peer="10.0.0.1"),
                series("metallb_bfd_session_up", "1x20", pod="speaker-a", peer="10.0.0.1"),
                series("ironlb_membership_quorum_bool", "0x20", pod="speaker-c"),
                series("ironlb_membership_quorum_bool", "1x20", pod="speaker-a"),
                series("ironlb_membership_alive_members", "3x20", pod="speaker-a"),
                series("ironlb_membership_alive_members", "3x20", pod="speaker-b"),
            ],
            "alert_rule_test": [
                {"eval_time": "30s", "alertname": "MetalLBBGPSessionDown", "exp_alerts": []},
                {"eval_time": "2m", "alertname": "MetalLBBGPSessionDown",
                 "exp_alerts": [x.alert("MetalLBBGPSessionDown", pod="speaker-a", peer="10.0.0.1:179")]},
                {"eval_time": "2m", "alertname": "IronLBBFDSessionDown",
                 "exp_alerts": [x.alert("IronLBBFDSessionDown", pod="speaker-b", peer="10.0.0.1")]},
                {"eval_time": "2m", "alertname": "IronLBNoQuorum",
                 "exp_alerts": [x.alert("IronLBNoQuorum", pod="speaker-c")]},
                {"eval_time": "4m", "alertname": "IronLBMembershipDisagreement", "exp_alerts": []},
            ],
        },
        {   # the speakers count different alive members (a partition) for 2 minutes
            "interval": "15s",
            "input_series": [
                series("ironlb_membership_alive_members", "3x40", pod="speaker-a"),
                series("ironlb_membership_alive_members", "2x40", pod="speaker-b"),
            ],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "IronLBMembershipDisagreement", "exp_alerts": []},
                {"eval_time": "3m", "alertname": "IronLBMembershipDisagreement",
                 "exp_alerts": [x.alert("IronLBMembershipDisagreement")]},
            ],
        },
        {   # the fast path's timers: 2 % more than 100 ms late fires after 5 minutes; 0.1 % and exactly 1 % do not
            "interval": "1m",
            "input_series": [
                *lag_series("speaker-a", ticks=600, on_time=588),
                *lag_series("speaker-b", ticks=1000, on_time=999),
                *lag_series("speaker-c", ticks=600, on_time=594),
                *lag_series("speaker-z", ticks=600, on_time=300, namespace="other"),
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "IronLBFastPathLag", "exp_alerts": []},
                {"eval_time": "10m", "alertname": "IronLBFastPathLag",
                 "exp_alerts": [x.alert("IronLBFastPathLag", pod="speaker-a")]},
            ],
        },
        {   # failure detection: a member declared dead after 1.5 s (at minute 6) fires a minute later, for the 15
            # minutes the detection stays in the window; 0.4 s and exactly 1 s do not
            "interval": "1m",
            "input_series": [
                *detection_series("speaker-a", 1.5), *detection_series("speaker-b", 0.4),
                *detection_series("speaker-c", 1.0), *detection_series("speaker-z", 5.0, namespace="other"),
            ],
            "alert_rule_test": [
                {"eval_time": "6m30s", "alertname": "IronLBSlowFailureDetection", "exp_alerts": []},
                {"eval_time": "8m", "alertname": "IronLBSlowFailureDetection",
                 "exp_alerts": [x.alert("IronLBSlowFailureDetection", pod="speaker-a")]},
                {"eval_time": "25m", "alertname": "IronLBSlowFailureDetection", "exp_alerts": []},
            ],
        },
    ]


def lag_series(pod: str, *, ticks: int, on_time: int, namespace: str = NS) -> list[dict[str, str]]:
    """``ironlb_fastpath_loop_lag_seconds`` of one pod: TICKS timers a minute, ON_TIME of them at most 100 ms late
    (cumulative buckets: the 0.1 s one counts them, the 0.25 s one and +Inf count all)."""
    name = "ironlb_fastpath_loop_lag_seconds"
    return [series(f"{name}_bucket", f"0+{on_time}x20", le="0.1", namespace=namespace, pod=pod),
            series(f"{name}_bucket", f"0+{ticks}x20", le="0.25", namespace=namespace, pod=pod),
            series(f"{name}_bucket", f"0+{ticks}x20", le="+Inf", namespace=namespace, pod=pod),
            series(f"{name}_count", f"0+{ticks}x20", namespace=namespace, pod=pod)]  # fmt: skip


def detection_series(pod: str, seconds: float, *, namespace: str = NS) -> list[dict[str, str]]:
    """``ironlb_membership_detection_seconds`` of one pod: one detection taking SECONDS at minute 6."""
    name, before, after = "ironlb_membership_detection_seconds", "0x5 1x30", "0x36"
    out = [series(f"{name}_bucket", before if seconds <= bound else after, le=str(bound), namespace=namespace, pod=pod)
           for bound in (0.4, 0.75, 1.0, 1.5, 10.0)]
    return [*out, series(f"{name}_bucket", before, le="+Inf", namespace=namespace, pod=pod),
            series(f"{name}_count", before, namespace=namespace, pod=pod)]


def test_promtool_checks_the_rendered_rules(tmp_path: Path) -> None:
    spec = rendered_rules(tmp_path)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    out = promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    count = sum(len(g["rules"]) for g in spec["groups"])
    assert f"SUCCESS: {count} rules found" in out.stdout, out.stdout


def test_promtool_fires_each_alert(tmp_path: Path) -> None:
    spec = rendered_rules(tmp_path)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    x = Expect(spec)
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "15s", "tests": unit_tests(x)}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    assert x.fired == set(x.rules), f"alerts no unit test fires: {set(x.rules) - x.fired}"
    out = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout, out.stdout


def test_promtool_test_fails_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests can fail: an alert expected from a healthy series is reported as missing."""
    spec = rendered_rules(tmp_path)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    x = Expect(spec)
    wrong = {
        "interval": "15s",
        "input_series": [series("metallb_bgp_session_up", "1x20", pod="speaker-a", peer="10.0.0.2:179")],
        "alert_rule_test": [{"eval_time": "2m", "alertname": "MetalLBBGPSessionDown",
                             "exp_alerts": [x.alert("MetalLBBGPSessionDown", pod="speaker-a", peer="10.0.0.2:179")]}],
    }  # fmt: skip
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "tests": [wrong]}))
    out = promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert out.returncode != 0 and "MetalLBBGPSessionDown" in out.stdout + out.stderr
