"""``KubeClient``: ironlb's thin adapter over the Kubernetes REST API, dicts in and dicts out.

lightkube supplies what is tedious and security-sensitive: reading a kubeconfig or the in-cluster service account,
the TLS context, client certificates, bearer tokens (re-read when rotated) and exec credential plugins. Requests go
out through its HTTP client library (httpx2, over ironlb's own HTTP/1.1 transport, :mod:`ironlb.kube.transport`) as
plain REST calls, so the reflector controls resourceVersion, ``allowWatchBookmarks``, ``timeoutSeconds``, read
timeouts and 410 handling itself, and no code outside this package sees a library type. Every call waits on a
client-side token bucket (client-go's QPS/burst), retries a 429 after its Retry-After, and is counted per verb
(``stats``) for benchmarks.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
import json
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import msgspec
from lightkube.config import client_adapter
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.core.exceptions import ConfigError as LightkubeConfigError

from ironlb.kube.transport import Transport

log = logging.getLogger(__name__)

Obj = dict[str, Any]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
USER_AGENT = "ironlb"


@dataclass(frozen=True)
class Resource:
    """One REST resource: where it lives and what its objects are called."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


SERVICES = Resource("", "v1", "services", "Service")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
PODS = Resource("", "v1", "pods", "Pod")
EVENTS = Resource("", "v1", "events", "Event")
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
IP_ADDRESS_POOLS = Resource("metallb.io", "v1beta1", "ipaddresspools", "IPAddressPool")
L2_ADVERTISEMENTS = Resource("metallb.io", "v1beta1", "l2advertisements", "L2Advertisement")
BGP_ADVERTISEMENTS = Resource("metallb.io", "v1beta1", "bgpadvertisements", "BGPAdvertisement")
BGP_PEERS = Resource("metallb.io", "v1beta2", "bgppeers", "BGPPeer")
BFD_PROFILES = Resource("metallb.io", "v1beta1", "bfdprofiles", "BFDProfile")
COMMUNITIES = Resource("metallb.io", "v1beta1", "communities", "Community")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
VALIDATING_WEBHOOK_CONFIGURATIONS = Resource(
    "admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration",
    namespaced=False,
)
CUSTOM_RESOURCE_DEFINITIONS = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False
)
CONFIGURATION_STATES = Resource("metallb.io", "v1beta1", "configurationstates", "ConfigurationState")
SERVICE_L2_STATUSES = Resource("metallb.io", "v1beta1", "servicel2statuses", "ServiceL2Status")
SERVICE_BGP_STATUSES = Resource("metallb.io", "v1beta1", "servicebgpstatuses", "ServiceBGPStatus")


class KubeError(Exception):
    """Anything that made a call fail: an HTTP error status (:class:`ApiError`) or a transport problem."""


class TransportError(KubeError):
    """No answer: connection refused or reset, TLS failure, or a read timeout."""


class ApiError(KubeError):
    """The apiserver answered with an error status; ``body`` is its decoded ``Status`` when it sent one."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"{method} {path}: HTTP {status}: {message}")

    @property
    def reason(self) -> str:
        return str(self.body.get("reason", "")) if isinstance(self.body, dict) else ""

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def gone(self) -> bool:
        return self.status == 410


class RateLimiter:
    """client-go's token bucket: ``qps`` tokens a second, at most ``burst`` saved up; 0 disables it."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if self.qps <= 0:
            return
        async with self._lock:  # FIFO: callers are served in arrival order
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.qps)
            self._stamp = now
            if self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.qps)
                self._tokens = 1.0
                self._stamp = time.monotonic()
            self._tokens -= 1


PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}

# TCP keepalive so a silently dead apiserver connection fails within about a minute even when idle.
_KEEPALIVE = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
if hasattr(socket, "TCP_KEEPIDLE"):
    _KEEPALIVE += [
        (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30),
        (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10),
        (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3),
    ]


def load_config(kubeconfig: str | None = None, context: str | None = None) -> SingleConfig:
    """``kubeconfig`` if given, else in-cluster (service account), else ``$KUBECONFIG`` or ``~/.kube/config``."""
    try:
        cfg = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
        single = cfg.get(context_name=context)
    except (LightkubeConfigError, OSError, KeyError) as err:
        raise KubeError(f"cannot load the Kubernetes client configuration: {err}") from err
    if single is None:
        raise KubeError("the kubeconfig has no current context")
    return single


def in_cluster_namespace() -> str | None:
    """The Pod's namespace from its service account (MetalLB's fallback for ``--namespace``)."""
    try:
        return (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip() or None
    except OSError:
        return None


class KubeClient:
    """Async REST calls with dict objects; see the module docstring. Close with :meth:`close`."""

    def __init__(
        self,
        config: SingleConfig,
        *,
        qps: float = 100.0,
        burst: int = 200,
        timeout: float = 30.0,
        max_connections: int = 32,
    ) -> None:
        assert config.user is not None, "kubeconfig context without a user"
        verify = client_adapter.verify_cluster(config.cluster, config.user, config.abs_file)
        transport = Transport(verify, max_connections=max_connections, socket_options=_KEEPALIVE)
        self._http = httpx.AsyncClient(
            base_url=config.cluster.server,
            auth=client_adapter.user_auth(config.user),
            transport=transport,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            trust_env=False,
        )
        self.server = config.cluster.server
        self.namespace = config.namespace
        self.limiter = RateLimiter(qps, burst)
        self.timeout = timeout
        self.stats: Counter[str] = Counter()  # requests sent, per verb (LIST and WATCH apart from GET)

    @classmethod
    def from_kubeconfig(
        cls, kubeconfig: str | None = None, *, context: str | None = None, **options: Any
    ) -> KubeClient:
        return cls(load_config(kubeconfig, context), **options)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def with_limiter(self, qps: float, burst: int) -> KubeClient:
        """The same connections and request counts under a separate token bucket (controller-runtime gives its
        event recorder a client of its own, so events never slow status writes down)."""
        view = copy.copy(self)
        view.limiter = RateLimiter(qps, burst)
        return view

    @property
    def requests_total(self) -> int:
        return sum(self.stats.values())

    # ------------------------------------------------------------------------------------------------ raw requests
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        verb: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """One call; returns the decoded JSON body. A 429 (or a 5xx with Retry-After) is retried up to 5 times."""
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": content_type} if content is not None else None
        for attempt in range(6):
            await self.limiter.wait()
            self.stats[verb or method] += 1
            try:
                resp = await self._http.request(
                    method, path, params=params, content=content, headers=headers,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as err:
                raise TransportError(f"{method} {path}: {type(err).__name__}: {err}") from err
            retry_after = resp.headers.get("Retry-After")
            if attempt < 5 and (resp.status_code == 429 or (resp.status_code >= 500 and retry_after)):
                await asyncio.sleep(min(_float(retry_after, 1.0), 10.0))
                continue
            break
        data = _decode(resp.content)
        if resp.status_code >= 400:
            raise ApiError(method, path, resp.status_code, data)
        return data

    # ------------------------------------------------------------------------------------------------ verbs
    async def get(
        self, res: Resource, name: str, namespace: str | None = None, *, subresource: str | None = None
    ) -> Obj:
        return dict(await self.request("GET", res.path(namespace, name, subresource)))

    async def get_or_none(self, res: Resource, name: str, namespace: str | None = None) -> Obj | None:
        try:
            return await self.get(res, name, namespace)
        except ApiError as err:
            if err.not_found:
                return None
            raise

    async def list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """One page of a list (the ``<Kind>List`` object, ``metadata.continue`` set when there is more)."""
        params = _selectors(label_selector, field_selector)
        if limit:
            params["limit"] = str(limit)
        if continue_:
            params["continue"] = continue_
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        return dict(await self.request("GET", res.path(namespace), params=params, verb="LIST"))

    async def list_all(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        transform: Callable[[Obj], Obj] | None = None,
    ) -> tuple[builtins.list[Obj], str]:
        """Every object (pages of ``page_size``) with ``apiVersion``/``kind`` filled in, and the list's RV.

        ``transform`` is applied to each object as its page arrives, so a slimming transform bounds the peak
        memory of a large list to one raw page. A continue token that expired mid-way (410) restarts the list
        without paging, as client-go's pager does.
        """
        items: builtins.list[Obj] = []
        token: str | None = None
        limit: int | None = page_size
        while True:
            try:
                page = await self.list(res, namespace, label_selector=label_selector,
                                       field_selector=field_selector, limit=limit, continue_=token)
            except ApiError as err:
                if err.gone and token:
                    items, token, limit = [], None, None
                    continue
                raise
            for item in page.get("items") or []:
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", res.kind)
                items.append(transform(item) if transform else item)
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    async def watch(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        allow_bookmarks: bool = True,
        timeout_seconds: int = 60,
        read_timeout: float = 90.0,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> AsyncIterator[Obj]:
        """Watch events ``{"type", "object"}`` until the server ends the watch after ``timeout_seconds``.

        ``read_timeout`` bounds the silence between two chunks, so a dead connection raises TransportError.
        A refused watch raises ApiError (410 when ``resource_version`` is too old); an expired resourceVersion
        during the watch arrives as an ``ERROR`` event whose object is a Status with ``code`` 410.
        """
        params = _selectors(label_selector, field_selector)
        params.update(watch="1", timeoutSeconds=str(timeout_seconds))
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        path = res.path(namespace)
        await self.limiter.wait()
        self.stats["WATCH"] += 1
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        try:
            async with self._http.stream("GET", path, params=params, timeout=timeout) as resp:
                if resp.status_code >= 400:
                    raise ApiError("WATCH", path, resp.status_code, _decode(await resp.aread()))
                async for line in resp.aiter_lines():
                    if line:
                        yield loads(line)
        except httpx.TransportError as err:
            raise TransportError(f"WATCH {path}: {type(err).__name__}: {err}") from err
        except json.JSONDecodeError as err:
            raise TransportError(f"WATCH {path}: undecodable event: {err}") from err

    async def create(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        body = {"apiVersion": res.api_version, "kind": res.kind, **obj}
        return dict(await self.request("POST", res.path(ns), body=body))

    async def replace(self, res: Resource, obj: Obj, *, subresource: str | None = None) -> Obj:
        meta = obj.get("metadata") or {}
        body = {"apiVersion": res.api_version, "kind": res.kind, **obj}
        path = res.path(meta.get("namespace"), meta["name"], subresource)
        return dict(await self.request("PUT", path, body=body))

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        patch_type: str = "merge",
        field_manager: str | None = None,
        force: bool | None = None,
    ) -> Obj:
        params: dict[str, str] = {}
        if field_manager:
            params["fieldManager"] = field_manager
        if force is not None:
            params["force"] = "true" if force else "false"
        return dict(await self.request(
            "PATCH", res.path(namespace, name, subresource), params=params, body=patch,
            content_type=PATCH_TYPES[patch_type],
        ))

    async def apply(
        self, res: Resource, obj: Obj, *, field_manager: str, subresource: str | None = None, force: bool = True
    ) -> Obj:
        """Server-side apply (the body is JSON, which is YAML)."""
        meta = obj.get("metadata") or {}
        body = {"apiVersion": res.api_version, "kind": res.kind, **obj}
        return await self.patch(res, meta["name"], body, meta.get("namespace"), subresource=subresource,
                                patch_type="apply", field_manager=field_manager, force=force)

    async def delete(self, res: Resource, name: str, namespace: str | None = None) -> Obj | None:
        try:
            return dict(await self.request("DELETE", res.path(namespace, name)))
        except ApiError as err:
            if err.not_found:
                return None
            raise


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def _decode(content: bytes) -> Any:
    if not content:
        return {}
    try:
        return loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")


_DECODER = msgspec.json.Decoder()


def loads(data: bytes | str) -> Any:
    """``json.loads``, about twice as fast: msgspec's decoder (already loaded with lightkube) decodes the strict JSON
    the apiserver sends (a list of 1,000 Services, 1.5 MB, is then ~8 instead of ~14 ms: issue 16). What it refuses
    (NaN, Infinity, numbers out of a float's range, lone surrogates, a BOM, ...) goes to ``json.loads``, so the
    result, or the error, is always ``json.loads``'s."""
    try:
        return _DECODER.decode(data)
    except ValueError:  # msgspec.DecodeError, or a str msgspec cannot encode (a lone surrogate)
        return json.loads(data)


def _float(text: str | None, default: float) -> float:
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, float(text))  # type: ignore[arg-type]
    return default


def object_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` (or ``name`` for cluster-scoped objects), client-go's MetaNamespaceKeyFunc."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


def env_default(name: str, default: str = "") -> str:
    return os.environ.get(name, default)
