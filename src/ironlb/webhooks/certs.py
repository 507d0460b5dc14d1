"""The webhooks' TLS: a self-signed CA and a serving certificate, kept in a Secret, rotated before they expire, and
the CA injected where the apiserver reads it (the ValidatingWebhookConfiguration and the BGPPeer CRD's conversion).

MetalLB does this with open-policy-agent/cert-controller; ironlb does it with the ``openssl`` CLI (present in every
Debian-based image, and already needed by the test control plane), so no crypto library is added. Keys are ECDSA
P-256: fast to make, and accepted by every apiserver.

The Secret (MetalLB's ``metallb-webhook-cert``) holds ``ca.crt`` (the CA bundle the apiserver trusts: the current CA
first, then the previous one for a while after a CA rotation, so requests keep working whichever certificate a
replica still serves), ``ca.key``, ``tls.crt`` and ``tls.key``. Writes are conditional on resourceVersion, so
several controller replicas converge on one certificate.

All API access goes through ironlb's ``KubeClient`` (typed resources, ``ApiError`` for refusals).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import os
import secrets
import ssl
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ironlb.kube.client import (
    CUSTOM_RESOURCE_DEFINITIONS,
    DEPLOYMENTS,
    SECRETS,
    VALIDATING_WEBHOOK_CONFIGURATIONS,
    ApiError,
    KubeClient,
)

log = logging.getLogger(__name__)

SECRET_NAME = "metallb-webhook-cert"
SERVICE_NAME = "metallb-webhook-service"
WEBHOOK_CONFIG_NAME = "metallb-webhook-configuration"
CONVERSION_CRDS = ("bgppeers.metallb.io",)
MEMBERLIST_SECRET = "memberlist"

CA_DAYS = 3650
CERT_DAYS = 365
LOOKAHEAD = 30 * 86400.0  # renew what expires within 30 days
CA_NAME = "ironlb-webhook-ca"



class CertError(RuntimeError):
    """openssl failed, or the API refused to store a certificate."""


def service_dns_names(service: str, namespace: str) -> list[str]:
    """The names the apiserver may dial a webhook Service by (it uses ``<svc>.<ns>.svc``)."""
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]


# ------------------------------------------------------------------------------------------------ certificates
@dataclass(frozen=True)
class CertBundle:
    """PEM bytes of the CA (``ca_bundle`` starts with it) and of the serving key pair."""

    ca_bundle: bytes
    ca_key: bytes
    tls_crt: bytes
    tls_key: bytes

    @property
    def ca_crt(self) -> bytes:
        """The current CA: the first certificate of the bundle (empty if there is none)."""
        found = split_pem(self.ca_bundle)
        return found[0] if found else b""

    def secret_data(self) -> dict[str, str]:
        return {
            "ca.crt": _b64(self.ca_bundle),
            "ca.key": _b64(self.ca_key),
            "tls.crt": _b64(self.tls_crt),
            "tls.key": _b64(self.tls_key),
        }

    @classmethod
    def from_secret(cls, secret: Mapping[str, Any] | None) -> CertBundle | None:
        """The bundle stored in a Secret, or None when a key is missing or not base64."""
        data = (secret or {}).get("data") or {}
        try:
            values = [base64.b64decode(str(data[k]), validate=True) for k in ("ca.crt", "ca.key", "tls.crt", "tls.key")]
        except (KeyError, ValueError):
            return None
        if not all(values):
            return None
        return cls(*values)


@dataclass(frozen=True)
class CertInfo:
    not_after: float  # seconds since the epoch
    dns_names: frozenset[str]
    ip_addresses: frozenset[str]


def split_pem(pem: bytes) -> list[bytes]:
    """The certificates of a PEM bundle, each with its BEGIN/END lines."""
    out = []
    end = b"-----END CERTIFICATE-----"
    for block in pem.split(end)[:-1]:
        start = block.find(b"-----BEGIN CERTIFICATE-----")
        if start >= 0:
            out.append(block[start:] + end + b"\n")
    return out


async def openssl(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> bytes:
    """Run the openssl CLI (without a shell); CertError with its stderr when it fails."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "openssl", *args, cwd=cwd,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        raise CertError("the openssl command is not installed") from None
    out, err = await proc.communicate(stdin)
    if proc.returncode != 0:
        raise CertError(f"openssl {args[0]} failed: {err.decode(errors='replace').strip()}")
    return out


_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


async def generate_ca(*, days: int = CA_DAYS, common_name: str = CA_NAME) -> tuple[bytes, bytes]:
    """A new self-signed CA: (certificate PEM, key PEM)."""
    with tempfile.TemporaryDirectory(prefix="ironlb-ca-") as tmp:
        d = Path(tmp)
        await openssl(
            "req", "-x509", *_EC, "-keyout", "ca.key", "-out", "ca.crt", "-days", str(days), "-sha256",
            "-subj", f"/CN={common_name}-{int(time.time())}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            cwd=d,
        )
        return (d / "ca.crt").read_bytes(), (d / "ca.key").read_bytes()


async def issue_serving_cert(
    ca_crt: bytes, ca_key: bytes, dns_names: Sequence[str], ip_addresses: Sequence[str] = (), *, days: int = CERT_DAYS
) -> tuple[bytes, bytes]:
    """A serving certificate for ``dns_names`` and ``ip_addresses`` signed by the CA: (certificate, key)."""
    sans = [f"DNS:{n}" for n in dns_names] + [f"IP:{ip}" for ip in ip_addresses]
    if not sans:
        raise CertError("a serving certificate needs at least one DNS name or IP address")
    cn = dns_names[0] if dns_names else ip_addresses[0]
    with tempfile.TemporaryDirectory(prefix="ironlb-cert-") as tmp:
        d = Path(tmp)
        (d / "ca.crt").write_bytes(ca_crt)
        (d / "ca.key").write_bytes(ca_key)
        (d / "ext").write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage=serverAuth\nsubjectAltName={','.join(sans)}\n"
        )
        await openssl("req", "-new", *_EC, "-keyout", "tls.key", "-out", "tls.csr", "-subj", f"/CN={cn}", cwd=d)
        await openssl(
            "x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", "0x" + secrets.token_hex(16), "-days", str(days), "-sha256",
            "-extfile", "ext", "-out", "tls.crt", cwd=d,
        )
        return (d / "tls.crt").read_bytes(), (d / "tls.key").read_bytes()


async def cert_info(pem: bytes) -> CertInfo:
    """Expiry and subject alternative names of a certificate."""
    text = (await openssl("x509", "-noout", "-enddate", "-ext", "subjectAltName", stdin=pem)).decode()
    not_after = 0.0
    dns: set[str] = set()
    ips: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("notAfter="):
            not_after = float(ssl.cert_time_to_seconds(line.split("=", 1)[1]))
        for item in line.split(","):
            item = item.strip()
            if item.startswith("DNS:"):
                dns.add(item[4:])
            elif item.startswith("IP Address:"):
                with contextlib.suppress(ValueError):
                    ips.add(str(ipaddress.ip_address(item[len("IP Address:"):])))
    return CertInfo(not_after, frozenset(dns), frozenset(ips))


async def _public_key(pem: bytes, *, is_cert: bool) -> bytes:
    if is_cert:
        return await openssl("x509", "-noout", "-pubkey", stdin=pem)
    return await openssl("pkey", "-pubout", stdin=pem)


async def signed_by(ca_crt: bytes, cert: bytes) -> bool:
    with tempfile.TemporaryDirectory(prefix="ironlb-verify-") as tmp:
        d = Path(tmp)
        (d / "ca.crt").write_bytes(ca_crt)
        (d / "tls.crt").write_bytes(cert)
        try:
            await openssl("verify", "-CAfile", "ca.crt", "-purpose", "sslserver", "tls.crt", cwd=d)
        except CertError:
            return False
    return True


async def rotation_needed(
    bundle: CertBundle | None,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = (),
    *,
    now: float | None = None,
    lookahead: float = LOOKAHEAD,
) -> str:
    """What must be renewed: ``"ca"`` (a new CA and certificate), ``"cert"`` (a new certificate), or ``""``."""
    now = time.time() if now is None else now
    if bundle is None:
        return "ca"
    try:
        ca = await cert_info(bundle.ca_crt)
        if ca.not_after - now < lookahead:
            return "ca"
        if await _public_key(bundle.ca_crt, is_cert=True) != await _public_key(bundle.ca_key, is_cert=False):
            return "ca"
    except CertError:
        return "ca"
    try:
        tls = await cert_info(bundle.tls_crt)
        if tls.not_after - now < lookahead:
            return "cert"
        if not set(dns_names) <= tls.dns_names or not {str(ipaddress.ip_address(i)) for i in ip_addresses} <= (
            tls.ip_addresses
        ):
            return "cert"
        if await _public_key(bundle.tls_crt, is_cert=True) != await _public_key(bundle.tls_key, is_cert=False):
            return "cert"
        if not await signed_by(bundle.ca_crt, bundle.tls_crt):
            return "cert"
    except CertError:
        return "cert"
    return ""


async def renew(
    bundle: CertBundle | None, what: str, dns_names: Sequence[str], ip_addresses: Sequence[str] = ()
) -> CertBundle:
    """A new certificate (``what == "cert"``) or a new CA and certificate (``"ca"``); after a CA rotation the old
    CA stays in the bundle, behind the new one, while it is still valid."""
    if what == "cert" and bundle is not None:
        crt, key = await issue_serving_cert(bundle.ca_crt, bundle.ca_key, dns_names, ip_addresses)
        return CertBundle(bundle.ca_bundle, bundle.ca_key, crt, key)
    ca_crt, ca_key = await generate_ca()
    ca_bundle = ca_crt
    if bundle is not None and bundle.ca_crt:
        with contextlib.suppress(CertError):
            if (await cert_info(bundle.ca_crt)).not_after > time.time():
                ca_bundle = ca_crt + bundle.ca_crt
    crt, key = await issue_serving_cert(ca_crt, ca_key, dns_names, ip_addresses)
    return CertBundle(ca_bundle, ca_key, crt, key)


# ------------------------------------------------------------------------------------------------ the API side
async def ensure_certificates(
    api: KubeClient,
    *,
    namespace: str,
    secret_name: str = SECRET_NAME,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    lookahead: float = LOOKAHEAD,
    attempts: int = 5,
) -> tuple[CertBundle, bool]:
    """The valid bundle from the Secret, renewing and storing it first when needed; ``(bundle, changed)``.

    A conflicting write (another replica rotated at the same time) re-reads and re-checks.
    """
    last: BaseException | None = None
    for _ in range(attempts):
        secret = await api.get_or_none(SECRETS, secret_name, namespace)
        current = CertBundle.from_secret(secret)
        what = await rotation_needed(current, dns_names, ip_addresses, lookahead=lookahead)
        if not what:
            assert current is not None
            return current, False
        log.info("webhook certificate: issuing a new %s", "CA and certificate" if what == "ca" else "certificate")
        new = await renew(current, what, dns_names, ip_addresses)
        try:
            if secret is None:
                body = {"type": "Opaque", "metadata": {"name": secret_name, "namespace": namespace},
                        "data": new.secret_data()}
                await api.create(SECRETS, body, namespace)
            else:
                secret = dict(secret)
                data = dict(secret.get("data") or {})
                data.update(new.secret_data())
                secret["data"] = data
                await api.replace(SECRETS, secret)  # carries resourceVersion
        except ApiError as err:
            if err.conflict or err.not_found:  # someone else wrote (or deleted) it meanwhile: look again
                last = err
                continue
            raise
        return new, True
    raise CertError(f"could not store the webhook certificate in Secret {namespace}/{secret_name}: {last}")


async def inject_ca_bundle(
    api: KubeClient,
    ca_bundle: bytes,
    *,
    webhook_config: str = WEBHOOK_CONFIG_NAME,
    crds: Iterable[str] = CONVERSION_CRDS,
) -> list[str]:
    """Put ``ca_bundle`` into every webhook of the ValidatingWebhookConfiguration and into the conversion webhook of
    each CRD whose conversion strategy is Webhook; returns what was changed. A missing object is skipped (the
    webhooks can be left out of an install), and nothing is written when the bundle is already there."""
    want = _b64(ca_bundle)
    changed = []
    vwc = await api.get_or_none(VALIDATING_WEBHOOK_CONFIGURATIONS, webhook_config)
    if vwc is not None:
        ops: list[dict[str, Any]] = []
        for i, hook in enumerate(vwc.get("webhooks") or []):
            if (hook.get("clientConfig") or {}).get("caBundle") != want:
                ops.append({"op": "test", "path": f"/webhooks/{i}/name", "value": hook.get("name")})
                ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": want})
        if ops:
            await api.patch(VALIDATING_WEBHOOK_CONFIGURATIONS, webhook_config, ops, patch_type="json")
            changed.append(f"ValidatingWebhookConfiguration/{webhook_config}")
    for name in crds:
        crd = await api.get_or_none(CUSTOM_RESOURCE_DEFINITIONS, name)
        conversion = ((crd or {}).get("spec") or {}).get("conversion") or {}
        if conversion.get("strategy") != "Webhook":
            continue
        if ((conversion.get("webhook") or {}).get("clientConfig") or {}).get("caBundle") == want:
            continue
        patch = {"spec": {"conversion": {"webhook": {"clientConfig": {"caBundle": want}}}}}
        await api.patch(CUSTOM_RESOURCE_DEFINITIONS, name, patch)
        changed.append(f"CustomResourceDefinition/{name}")
    if changed:
        log.info("webhook CA bundle injected into %s", ", ".join(changed))
    return changed


async def ensure_memberlist_secret(
    api: KubeClient, *, namespace: str, name: str = MEMBERLIST_SECRET, deployment: str = ""
) -> bool:
    """MetalLB's ``CreateMlSecret``: the speakers' shared key (``secretkey``, 16 random bytes in unpadded base64),
    created only when the Secret is absent, owned by the controller Deployment when one is named (so it goes
    away with the install); True when it was created. A named Deployment that cannot be read is an error."""
    if await api.get_or_none(SECRETS, name, namespace) is not None:
        return False
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if deployment:
        owner = await api.get(DEPLOYMENTS, deployment, namespace)
        meta = owner.get("metadata") or {}
        metadata["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta.get("name"), "uid": meta.get("uid")}
        ]
    key = base64.b64encode(os.urandom(16)).rstrip(b"=")
    body = {"type": "Opaque", "metadata": metadata, "data": {"secretkey": _b64(key)}}
    try:
        await api.create(SECRETS, body, namespace)
    except ApiError as err:
        if err.conflict:
            return False
        raise
    return True


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


__all__ = [
    "CONVERSION_CRDS",
    "SECRET_NAME",
    "SERVICE_NAME",
    "WEBHOOK_CONFIG_NAME",
    "CertBundle",
    "CertError",
    "CertInfo",
    "cert_info",
    "ensure_certificates",
    "ensure_memberlist_secret",
    "generate_ca",
    "inject_ca_bundle",
    "issue_serving_cert",
    "renew",
    "rotation_needed",
    "service_dns_names",
]
