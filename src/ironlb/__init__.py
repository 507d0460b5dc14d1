"""ironlb: a MetalLB-compatible load balancer for bare-metal Kubernetes."""

from ironlb import lazy

__version__ = "0.1.0"

# prometheus_client's __init__ imports its exposition module, and with it http.server, urllib.request, wsgiref and
# email: a fifth of a process's import time that ironlb needs only once /metrics is scraped (ironlb.metrics.server
# imports it then). Its collectors' modules are imported as its __init__ would, so the default registry is the same.
lazy.package_without_init(
    "prometheus_client",
    {
        **dict.fromkeys(("REGISTRY", "CollectorRegistry"), "registry"),
        **dict.fromkeys(("Counter", "Enum", "Gauge", "Histogram", "Info", "Summary"), "metrics"),
        "Metric": "metrics_core",
        **dict.fromkeys(("GC_COLLECTOR", "GCCollector"), "gc_collector"),
        **dict.fromkeys(("PLATFORM_COLLECTOR", "PlatformCollector"), "platform_collector"),
        **dict.fromkeys(("PROCESS_COLLECTOR", "ProcessCollector"), "process_collector"),
    },
    eager=("gc_collector", "platform_collector", "process_collector"),
)
