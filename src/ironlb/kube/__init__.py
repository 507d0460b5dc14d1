"""ironlb's Kubernetes client layer: a REST adapter, an informer, a work queue, an event recorder and leader
election, shared by the controller and the speaker. Objects are plain dicts; no library type leaks out.

**Library: lightkube (1.0.x), used for configuration and its httpx client only** (the HTTP/1.1 transport under
that client is ironlb's own, :mod:`ironlb.kube.transport`). Measured here (Python 3.11, fresh
virtualenvs, RSS after import, baseline with pydantic + PyYAML + asyncio + ssl already loaded: 25 MB):

===========================  ==============  ==============  ==============================================
                             installed       RSS on import   notes
===========================  ==============  ==============  ==============================================
lightkube 1.0.1 (+httpx2,    15 MB           +9 MB           kubeconfig, in-cluster token (re-read when
msgspec, anyio, h2)                                          rotated), exec plugins; 0.1 s to import
kubernetes 37.0.2 (aio)      163 MB          +30 MB          aiohttp, pydantic models, informer, leader
                                                             election; 0.3-0.7 s to import
===========================  ==============  ==============  ==============================================

The speaker runs on every node, so 20 MB per node and a tenth of the install size decide it. What the official
client would have given for free is written here, small and tested: the reflector (lightkube's own watch retry
drops deletions on 410 and cannot ask for bookmarks, so :mod:`ironlb.kube.informer` drives watches itself through
lightkube's HTTP client), client-go's event correlator and Lease-based leader election. The whole controller
process idles at about 49 MB RSS (see bench/RESULTS.md).

Public API:

- :class:`~ironlb.kube.client.KubeClient` (``from_kubeconfig(path|None)``; ``get``, ``get_or_none``, ``list``,
  ``list_all``, ``watch``, ``create``, ``replace``, ``patch`` (merge/strategic/json/apply, subresources),
  ``apply``, ``delete``; ``stats`` per verb) with :class:`~ironlb.kube.client.Resource` constants
  (``SERVICES``, ``NODES``, ``ENDPOINT_SLICES``, ``LEASES``, the ``metallb.io`` kinds, ...), raising
  :class:`~ironlb.kube.client.ApiError` / :class:`~ironlb.kube.client.TransportError`.
- :class:`~ironlb.kube.informer.Informer` (``store``, ``synced``, ``add_handler``, ``put_local``, ``run``).
- :class:`~ironlb.kube.workqueue.WorkQueue` and ``REPROCESS_ALL``.
- :class:`~ironlb.kube.events.EventRecorder` (``event(obj, type, reason, message)``, ``run``).
- :class:`~ironlb.kube.leader.LeaderElector` (``run(lead)``, raises ``LeadershipLost``).
"""

from ironlb.kube.client import ApiError, KubeClient, KubeError, Resource, TransportError, object_key
from ironlb.kube.events import EventRecorder
from ironlb.kube.informer import Informer, wait_synced
from ironlb.kube.leader import LeaderElector, LeadershipLost
from ironlb.kube.workqueue import REPROCESS_ALL, ShutDown, WorkQueue

__all__ = [
    "REPROCESS_ALL",
    "ApiError",
    "EventRecorder",
    "Informer",
    "KubeClient",
    "KubeError",
    "LeaderElector",
    "LeadershipLost",
    "Resource",
    "ShutDown",
    "TransportError",
    "WorkQueue",
    "object_key",
    "wait_synced",
]
