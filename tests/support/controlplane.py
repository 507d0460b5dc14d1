"""A real Kubernetes control plane for tests: etcd and kube-apiserver on loopback, as controller-runtime's envtest runs
them. There is no kubelet, scheduler or controller-manager: tests create Nodes, Services, EndpointSlices and
Namespaces themselves (and a deleted Namespace stays Terminating, since no namespace controller finalizes it).

The binaries come from ``scripts/build-k8s.sh`` (built from the Go module proxy into a cache directory); the
certificates are made with the ``openssl`` CLI; the admin client speaks HTTPS with ``ssl`` and ``http.client``.

    cp = ControlPlane.start(bin_dir, workdir)
    cp.get("/api/v1/namespaces")
    cp.restart_apiserver(); cp.compact_etcd()
    cp.stop()
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ironlb.lab.waits import WaitTimeout, wait_until

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-k8s.sh"
CRD_DIR = REPO / "config" / "crd"

SERVICE_CIDR_V4 = "10.96.0.0/12"
SERVICE_CIDR_V6 = "fd00:10:96::/112"
# What etcd or kube-apiserver answer while they start: refused or cut connections, a half-written answer.
STARTING_SERVER: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException, ValueError)
KUBERNETES_SERVICE_IP = "10.96.0.1"  # the first address of the primary service range


class KubeError(RuntimeError):
    """A request answered with an HTTP error: ``status`` and the decoded ``Status`` body."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"{method} {path}: HTTP {status}: {message}")

    @property
    def reason(self) -> str:
        return str(self.body.get("reason", "")) if isinstance(self.body, dict) else ""


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def warnings(self) -> list[str]:
        return [v for k, v in self.headers.items() if k.lower() == "warning"]


def find_binaries() -> Path | None:
    """The directory with ``kube-apiserver`` and ``etcd`` (``$IRONLB_K8S_BIN``, else the build script's), or None."""
    env = os.environ.get("IRONLB_K8S_BIN")
    if env:
        d = Path(env)
    else:
        out = subprocess.run([str(BUILD_SCRIPT), "--bin-dir"], check=True, capture_output=True, text=True).stdout
        d = Path(out.strip().splitlines()[-1])
    if (d / "kube-apiserver").is_file() and (d / "etcd").is_file():
        return d
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> None:
    """CA, apiserver serving cert, admin client cert (CN admin, O system:masters), service-account key pair."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
             "-subj", "/CN=ironlb-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", cwd=d)
    sans = ",".join([
        "IP:127.0.0.1", "IP:::1", f"IP:{KUBERNETES_SERVICE_IP}", "DNS:localhost", "DNS:kubernetes",
        "DNS:kubernetes.default", "DNS:kubernetes.default.svc", "DNS:kubernetes.default.svc.cluster.local",
    ])
    leaves = [
        ("apiserver", "/CN=kube-apiserver", f"subjectAltName={sans}\nextendedKeyUsage=serverAuth"),
        ("admin", "/O=system:masters/CN=admin", "extendedKeyUsage=clientAuth"),
    ]
    for name, subj, ext in leaves:
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subj, cwd=d)
        (d / f"{name}.ext").write_text(f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n{ext}\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "3650", "-extfile", f"{name}.ext", cwd=d)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the test process dies, so a killed pytest leaves no etcd or
    kube-apiserver behind (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)


def death_signal() -> Callable[[], None] | None:
    # PR_SET_PDEATHSIG fires when the *thread* that started the child ends: only ask for it from the main thread
    # (a restart_apiserver() run from a worker thread must not die with that thread).
    return _die_with_parent if threading.current_thread() is threading.main_thread() else None


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    """Terminate one process we started, by its PID; kill it if it does not exit in time."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass
class ControlPlane:
    bin_dir: Path
    workdir: Path
    dual_stack: bool = True
    watch_cache: bool = True
    extra_apiserver_args: list[str] = field(default_factory=list)
    crd_paths: list[str] = field(default_factory=list)
    etcd_port: int = 0
    etcd_peer_port: int = 0
    port: int = 0
    etcd_proc: subprocess.Popen[bytes] | None = None
    apiserver_proc: subprocess.Popen[bytes] | None = None
    _ctx: ssl.SSLContext | None = None

    # ---- life cycle ------------------------------------------------------------------------------------------------
    @classmethod
    def start(cls, bin_dir: Path, workdir: Path, *, install_crds: bool = True, **options: Any) -> ControlPlane:
        cp = cls(bin_dir=bin_dir, workdir=workdir, **options)
        atexit.register(cp.stop)
        try:
            make_pki(cp.pki)
            cp.start_etcd()
            cp.start_apiserver()
            cp.write_kubeconfig()
            if install_crds:
                cp.install_crds()
        except BaseException:
            cp.stop()
            raise
        return cp

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.pki / "ca.crt"

    def start_etcd(self) -> None:
        for attempt in range(5):
            self.etcd_port, self.etcd_peer_port = free_port(), free_port()
            shutil.rmtree(self.workdir / "etcd-data", ignore_errors=True)  # a failed try's member is on other ports
            log = open(self.workdir / "etcd.log", "ab")  # noqa: SIM115 - the process owns it
            self.etcd_proc = subprocess.Popen(
                [
                    str(self.bin_dir / "etcd"),
                    "--name=ironlb-test",
                    f"--data-dir={self.workdir / 'etcd-data'}",
                    f"--listen-client-urls={self.etcd_url}",
                    f"--advertise-client-urls={self.etcd_url}",
                    f"--listen-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                    f"--initial-cluster=ironlb-test=http://127.0.0.1:{self.etcd_peer_port}",
                    "--unsafe-no-fsync=true",
                    "--quota-backend-bytes=2147483648",
                    "--log-level=warn",
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=death_signal(),
            )
            log.close()
            if self._wait(self._etcd_healthy, self.etcd_proc, 30, "etcd"):
                return
            stop_process(self.etcd_proc)
            if attempt == 4:
                raise RuntimeError(f"etcd did not start; see {self.workdir / 'etcd.log'}")

    def _apiserver_args(self) -> list[str]:
        cidr = f"{SERVICE_CIDR_V4},{SERVICE_CIDR_V6}" if self.dual_stack else SERVICE_CIDR_V4
        p = self.pki
        return [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            f"--service-cluster-ip-range={cidr}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            # No controller-manager creates service-account tokens, so the ServiceAccount admission would reject pods.
            "--disable-admission-plugins=ServiceAccount",
            # The `kubernetes` Service's endpoints would point at loopback, which endpoint validation refuses.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            f"--watch-cache={'true' if self.watch_cache else 'false'}",
            "--v=1",
            *self.extra_apiserver_args,
        ]

    def start_apiserver(self, *, timeout: float = 120) -> None:
        reuse = self.port != 0
        for attempt in range(5):
            if not reuse:
                self.port = free_port()
            log = open(self.workdir / "kube-apiserver.log", "ab")  # noqa: SIM115 - the process owns it
            self.apiserver_proc = subprocess.Popen(
                self._apiserver_args(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=death_signal(),
            )
            log.close()
            if self._wait(self._apiserver_ready, self.apiserver_proc, timeout, "kube-apiserver"):
                self._wait_served(time.monotonic() + timeout)
                return
            stop_process(self.apiserver_proc)
            if reuse or attempt == 4:
                break
        tail = (self.workdir / "kube-apiserver.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"kube-apiserver did not become ready; log tail:\n{tail}")

    def stop_apiserver(self) -> None:
        stop_process(self.apiserver_proc)
        self.apiserver_proc = None

    def restart_apiserver(self, *, downtime: float = 0.0) -> None:
        """Stop kube-apiserver (SIGTERM), wait ``downtime`` seconds, start it again on the same port; waits for
        /readyz. Watches and connections open through it are cut, as in a real apiserver restart."""
        self.stop_apiserver()
        time.sleep(downtime)
        self.start_apiserver()

    def stop(self) -> None:
        self.stop_apiserver()
        stop_process(self.etcd_proc)
        self.etcd_proc = None

    # ---- waiting ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _wait(check: Any, proc: subprocess.Popen[bytes], timeout: float, what: str) -> bool:
        """True once ``check`` passes; False when ``proc`` exits (the caller retries on another port) or in time."""

        def started() -> str | None:
            if proc.poll() is not None:
                return "exited"
            return "ready" if check() else None

        try:
            return wait_until(started, timeout, what, retry=STARTING_SERVER, interval=0.2) == "ready"
        except WaitTimeout:
            return False

    def _etcd_healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.etcd_port, timeout=2)
        try:
            conn.request("GET", "/health")
            resp = conn.getresponse()
            return resp.status == 200 and json.loads(resp.read()).get("health") == "true"
        finally:
            conn.close()

    def _apiserver_ready(self) -> bool:
        return self.request("GET", "/readyz", raw=True, timeout=5).status == 200

    # ---- etcd ------------------------------------------------------------------------------------------------------
    def _etcd_call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.etcd_port, timeout=30)
        try:
            conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"{}")
            if resp.status != 200:
                raise RuntimeError(f"etcd {path}: HTTP {resp.status}: {data}")
            return dict(data)
        finally:
            conn.close()

    def etcd_revision(self) -> int:
        """etcd's current revision (what the apiserver reports as resourceVersion)."""
        key = "/registry/namespaces/default"
        data = self._etcd_call("/v3/kv/range", {"key": _b64(key), "keys_only": True})
        return int(data["header"]["revision"])

    def compact_etcd(self, revision: int | None = None) -> int:
        """Compact etcd's history up to ``revision`` (default: the current one) through etcd's JSON gateway and
        return it. A watch or list from an older resourceVersion that reaches etcd then answers 410 Gone
        ("too old resource version"); with the watch cache on (the default), the apiserver still serves recent
        history from memory (and lists at an exact resourceVersion from its snapshots), so tests that need the 410
        start a ControlPlane with ``watch_cache=False`` or use ``expire_history()``."""
        rev = self.etcd_revision() if revision is None else revision
        try:
            self._etcd_call("/v3/kv/compaction", {"revision": str(rev), "physical": True})
        except RuntimeError as e:
            if "required revision has been compacted" not in str(e):  # already compacted that far: nothing to do
                raise
        return rev

    def expire_history(self) -> int:
        """Make every resourceVersion up to now too old: compact etcd, and restart the apiserver when its watch
        cache is on (that cache otherwise keeps serving recent history). A watch from an older resourceVersion
        then gets an ERROR event with a 410 Expired Status, and a list at such an exact resourceVersion 410."""
        rev = self.compact_etcd()
        if self.watch_cache:
            self.restart_apiserver()
        return rev

    # ---- the API ---------------------------------------------------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext:
        if self._ctx is None:
            ctx = ssl.create_default_context(cafile=str(self.ca_file))
            ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
            self._ctx = ctx
        return self._ctx

    def connection(self, timeout: float = 30) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ssl_context(), timeout=timeout)

    def request(self, method: str, path: str, body: Any = None, *, query: dict[str, Any] | None = None,
                content_type: str = "application/json", raw: bool = False, timeout: float = 30,
                retries: int = 10) -> Response:
        """One request as the admin (system:masters). Raises KubeError on a status >= 400 unless ``raw``."""
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        data = None if body is None else (body if isinstance(body, bytes | str) else json.dumps(body))
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        # Like client-go: a 429 (e.g. "storage is (re)initializing" just after a start) is retried after its
        # Retry-After (at most 1 s), up to ``retries`` times.
        for attempt in range(retries + 1):
            conn = self.connection(timeout)
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
                hdrs = resp.getheaders()
            finally:
                conn.close()
            if resp.status != 429 or attempt == retries:
                break
            time.sleep(min(float(resp.getheader("Retry-After") or 1), 1.0))
        try:
            decoded: Any = json.loads(payload) if payload else None
        except ValueError:
            decoded = payload.decode(errors="replace")
        result = Response(resp.status, decoded, _merge_headers(hdrs))
        if resp.status >= 400 and not raw:
            raise KubeError(method, path, resp.status, decoded)
        return result

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query or None).body

    def create(self, path: str, obj: dict[str, Any]) -> Any:
        return self.request("POST", path, obj).body

    def replace(self, path: str, obj: dict[str, Any]) -> Any:
        return self.request("PUT", path, obj).body

    def patch(self, path: str, patch: dict[str, Any], *, kind: str = "merge") -> Any:
        types = {"merge": "application/merge-patch+json", "strategic": "application/strategic-merge-patch+json",
                 "json": "application/json-patch+json"}
        return self.request("PATCH", path, patch, content_type=types[kind]).body

    def apply(self, path: str, obj: dict[str, Any], *, field_manager: str = "ironlb-tests",
              force: bool = True) -> Any:
        """Server-side apply of ``obj`` to the object at ``path``."""
        return self.request("PATCH", path, obj, content_type="application/apply-patch+yaml",
                            query={"fieldManager": field_manager, "force": str(force).lower()}).body

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path).body

    def watch(self, path: str, *, resource_version: str | None = None, timeout: float = 10,
              **query: Any) -> Iterator[dict[str, Any]]:
        """Yield watch events ``{"type", "object"}`` from a list path until the server ends the watch (after
        ``timeout`` seconds) or the caller stops iterating. An expired resourceVersion gives an ERROR event whose
        object is a Status with code 410 (or KubeError 410 when the server refuses the watch up front)."""
        q = {"watch": "true", "timeoutSeconds": str(int(timeout)), "allowWatchBookmarks": "false", **query}
        if resource_version is not None:
            q["resourceVersion"] = resource_version
        full = f"{path}?{urllib.parse.urlencode(q)}"
        conn = self.connection(timeout + 10)
        try:
            conn.request("GET", full, headers={"Accept": "application/json"})
            resp = conn.getresponse()
            if resp.status >= 400:
                payload = resp.read()
                raise KubeError("GET", full, resp.status, json.loads(payload) if payload else None)
            while True:
                line = resp.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()

    # ---- set-up ----------------------------------------------------------------------------------------------------
    def write_kubeconfig(self) -> None:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "ironlb-test", "cluster": {
                "server": self.url, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": "admin", "user": {
                "client-certificate": str(self.pki / "admin.crt"), "client-key": str(self.pki / "admin.key")}}],
            "contexts": [{"name": "ironlb-test", "context": {"cluster": "ironlb-test", "user": "admin"}}],
            "current-context": "ironlb-test",
        }
        self.kubeconfig.write_text(yaml.safe_dump(cfg, sort_keys=False))

    def install_crds(self, directory: Path = CRD_DIR, *, timeout: float = 60) -> list[str]:
        """Create (or replace) every CRD in ``directory``/*.yaml and wait until each is Established."""
        names = []
        base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        for f in sorted(directory.glob("*.yaml")):
            for doc in yaml.safe_load_all(f.read_text()):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                name = doc["metadata"]["name"]
                try:
                    self.create(base, doc)
                except KubeError as e:
                    if e.status != 409:
                        raise
                    current = self.get(f"{base}/{name}")
                    doc["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                    self.replace(f"{base}/{name}", doc)
                names.append(name)
        deadline = time.monotonic() + timeout
        for name in names:

            def established(name: str = name) -> bool:
                conds = (self.get(f"{base}/{name}").get("status") or {}).get("conditions") or []  # null at first
                return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

            try:
                wait_until(established, max(0.0, deadline - time.monotonic()), f"CRD {name} Established",
                           interval=0.1)
            except WaitTimeout as err:
                raise RuntimeError(str(err)) from None
        # The REST endpoints follow Established within a moment; wait until each kind and version answers.
        for name in names:
            plural, group = name.split(".", 1)
            crd = self.get(f"{base}/{name}")
            for v in crd["spec"]["versions"]:
                path = f"/apis/{group}/{v['name']}/{plural}"
                if path not in self.crd_paths:
                    self.crd_paths.append(path)
        self._wait_served(deadline)
        return names

    def _wait_served(self, deadline: float) -> None:
        """Wait until every installed custom resource list answers 200 (after a start, each one's storage
        initializes on its own and answers 429 until then)."""
        for path in self.crd_paths:
            try:
                wait_until(lambda p=path: self.request("GET", p, raw=True, retries=0).status == 200,  # type: ignore[misc]
                           max(0.0, deadline - time.monotonic()), f"{path} served", retry=STARTING_SERVER)
            except WaitTimeout as err:
                raise RuntimeError(f"{path} not served: {err}") from None

    def version(self) -> dict[str, Any]:
        return dict(self.get("/version"))


def _b64(s: str) -> str:
    import base64

    return base64.b64encode(s.encode()).decode()


def _merge_headers(items: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in items:
        out[k] = f"{out[k]}, {v}" if k in out else v
    return out
