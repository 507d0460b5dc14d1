"""Building explain views from YAML, as the shells do (the same loaders and builders)."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from typing import Any

from ironlb.cluster.objects import EndpointSlice, Namespace, Node, Service
from ironlb.config import build, load_texts
from ironlb.explain.core import View

NS = "metallb-system"


def view_of(text: str, **options: Any) -> View:
    """A cluster view: the configuration and objects of ``text``; Services keep the status they are written with."""
    resources = load_texts([("test.yaml", textwrap.dedent(text))], default_namespace=NS)
    view = View(
        config=build(resources, namespace=NS).config,
        services=tuple(Service.from_dict(s, default_cluster_ips=True) for s in resources.services),
        nodes=tuple(Node.from_dict(n) for n in resources.nodes),
        endpoint_slices=tuple(EndpointSlice.from_dict(e) for e in resources.endpoint_slices),
        namespaces=tuple(Namespace.from_dict(n) for n in resources.namespaces),
    )
    return replace(view, **options)


def config_of(text: str) -> Any:
    return build(load_texts([("new.yaml", textwrap.dedent(text))], default_namespace=NS), namespace=NS).config


def pool(name: str, *addresses: str, extra: str = "") -> str:
    addrs = "\n".join(f"    - {a}" for a in addresses)
    return f"""
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: {name}, namespace: {NS}}}
spec:
  addresses:
{addrs}
{extra}"""


def l2ad(name: str, spec: str = "{}") -> str:
    return f"""
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: {name}, namespace: {NS}}}
spec: {spec}
"""


def node(name: str, labels: str = "{}", unavailable: bool = False) -> str:
    status = (
        "status: {conditions: [{type: NetworkUnavailable, status: 'True'}]}" if unavailable else "status: {}"
    )
    return f"""
---
apiVersion: v1
kind: Node
metadata: {{name: {name}, labels: {labels}}}
{status}
"""


def service(
    name: str, ip: str | None = None, *, ns: str = "default", annotations: str = "{}", labels: str = "{}",
    etp: str = "Cluster", lb_class: str | None = None,
) -> str:
    status = f"status: {{loadBalancer: {{ingress: [{{ip: {ip}}}]}}}}" if ip else ""
    cls = f"  loadBalancerClass: {lb_class}\n" if lb_class else ""
    return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}, annotations: {annotations}, labels: {labels},
            creationTimestamp: "2026-01-01T00:00:00Z"}}
spec:
  type: LoadBalancer
  externalTrafficPolicy: {etp}
  selector: {{app: {name}}}
  ports: [{{port: 80, protocol: TCP}}]
{cls}{status}
"""


def slice_(service_name: str, *nodes: str, ns: str = "default", ready: bool = True) -> str:
    eps = ", ".join(
        f"{{addresses: [10.1.0.{i + 1}], nodeName: {n}, conditions: {{ready: {str(ready).lower()}}}}}"
        for i, n in enumerate(nodes)
    )
    return f"""
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {service_name}-x, namespace: {ns}, labels: {{kubernetes.io/service-name: {service_name}}}}}
addressType: IPv4
endpoints: [{eps}]
"""
