"""``ironlb.metrics.export``: stores registered with the global registry before prometheus_client is imported are
exported at the first scrape, in full; after it, at once; an unregistered store is gone either way. In a new
interpreter: the global registry and the import of prometheus_client are process-wide."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from ironlb.layer2.metrics import REQUESTS_RECEIVED, Layer2Metrics
from ironlb.metrics.export import DEFAULT_REGISTRY, default_registry, unregister
from ironlb.metrics.speaker import AnnouncedMetric

early, dropped = Layer2Metrics(), AnnouncedMetric()
early.request_received("10.0.0.1")
unregister(dropped)
assert "prometheus_client" not in sys.modules
registry = default_registry()  # what a metrics server does at its first scrape
late = AnnouncedMetric()  # registered at once now
late.set([("default/web", "layer2", "n1", "10.0.0.2")])
from prometheus_client import REGISTRY, generate_latest
assert registry is REGISTRY
text = generate_latest(registry).decode()
assert 'metallb_layer2_requests_received{ip="10.0.0.1"} 1.0' in text, text
assert 'metallb_speaker_announced{ip="10.0.0.2",node="n1",protocol="layer2",service="default/web"} 1.0' in text
assert text.count("# TYPE metallb_speaker_announced gauge") == 1  # the dropped one is not there
unregister(late)
assert "metallb_speaker_announced" not in generate_latest(registry).decode()
print("ok")
"""


def test_stores_registered_before_the_first_scrape_are_exported_by_it() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
