"""``build_config``: the ``metallb.io`` resources -> one validated, immutable :class:`Config`.

The steps, rules and error texts are MetalLB's (``internal/config/config.go``: ``For``), run in its
order: feature check, BFD profiles, peers, communities, pools (with overlap check), L2 advertisements,
the duplicate-BGPAdvertisement check, BGP advertisements, then the BFD-echo/IPv6 cross check. Resources
of each kind are sorted by name first, as MetalLB does, so equal inputs give an equal Config.

Unlike MetalLB, which stops at the first problem, every independent problem is reported (a resource
that fails is left out of later steps, so one mistake does not cascade). Each message reads
``<Kind> "<name>": <field>: <MetalLB's message>``; MetalLB's text is kept verbatim as a substring.

ironlb's BGP is not MetalLB's "native" mode. Decision table for the features MetalLB's native mode
refuses (``DiscardFRROnly``) or that are FRR-only:

====================================  ==========  ==============================================
feature                               ironlb      note
====================================  ==========  ==============================================
IPv6 pools advertised over BGP        accepted
large communities                     accepted
BFDProfile / BGPPeer.bfdProfile       accepted    profile must exist; echoMode: IPv4 single-hop sessions
BFDProfile annotation                 ironlb's    names a Secret (password, type, keyID): Keyed SHA1 BFD
``ironlb.io/bfd-auth-secret``                     authentication (RFC 5880 6.7.4). MetalLB ignores it
enableGracefulRestart                 accepted
keepaliveTime / connectTime           accepted    connectTime: 1..65535 whole seconds (CEL)
dynamicASN (internal|external)        accepted
ebgpMultiHop                          accepted    refused on iBGP peers, as MetalLB
dualStackAddressFamily                accepted
disableMP                             accepted    deprecated, no effect: a warning
vrf                                   REJECTED    "VRF is not supported by ironlb": untested, as the
                                                  build machine's kernel has no ``vrf`` link type
localASN                              accepted    eBGP peers only and not equal to peerASN (FRR's rules for
                                                  ``local-as``, which MetalLB renders it to); equal to myASN: a
                                                  warning, no effect. MetalLB native mode refuses it
interface (unnumbered BGP)            accepted    IPv6 link-local session, IPv4 via RFC 8950; dialled only
annotation ``ironlb.io/passive``      ironlb's    "true": never dial, the peer connects (ironlb always accepts
                                                  a configured peer's connection on port 179); "false" or
                                                  absent: dial. MetalLB ignores it
BGPAdvertisement annotation           ironlb's    ``ironlb.io/link-bandwidth: ready-endpoints``: ETP Local
``ironlb.io/link-bandwidth``                      prefixes carry the Link Bandwidth extended community of the
                                                  node's ready local endpoints; any other value is refused.
                                                  MetalLB ignores it
ConfigMap ``bgpextras``               REJECTED    raw FRR configuration has no meaning here
FRR cross-peer checks (routerID ...)  not run     they constrain FRR's single "router bgp"
====================================  ==========  ==============================================

A name in ``ipAddressPools`` that matches no pool is skipped, as MetalLB does; ironlb adds a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from ironlb.cluster.labels import EVERYTHING, LabelSelector, SelectorError
from ironlb.config import types as t
from ironlb.config.addresses import AddressError, lowest_mask, parse_cidr, parse_ip
from ironlb.config.communities import CommunityError, parse_community
from ironlb.config.durations import MILLISECOND, SECOND, format_duration
from ironlb.config.errors import ConfigError, goq
from ironlb.config.ifname import interface_name_problem
from ironlb.config.loader import Resources, SecretData
from ironlb.config.models import (
    BFDProfile,
    BGPAdvertisement,
    BGPAdvertisementSpec,
    BGPPeer,
    IPAddressPool,
    L2Advertisement,
    L2AdvertisementSpec,
    LabelSelectorModel,
    MetalLBResource,
)
from ironlb.config.overlap import OverlapIndex

AS_TRANS = 23456  # RFC 6793: the 2-octet stand-in for a 4-octet ASN, never an AS of its own
JOIN = "; "  # how MetalLB's errors.Join(a, b) is rendered on one line
BASIC_AUTH = "kubernetes.io/basic-auth"

R = TypeVar("R", bound=MetalLBResource)


@dataclass(frozen=True)
class BuildResult:
    config: t.Config
    warnings: tuple[str, ...] = ()


class _Problem(Exception):
    """One MetalLB error for one resource; ``transient`` marks a dangling reference."""

    def __init__(self, message: str, *, field: str = "", transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.transient = transient


@dataclass
class _PoolInfo:
    pool: t.Pool
    labels: Mapping[str, str]
    cidrs_per_address: list[tuple[str, list[t.IPNetwork]]]
    l2: list[t.L2Advertisement] = field(default_factory=list)
    bgp: list[t.BGPAdvertisement] = field(default_factory=list)
    bgp_nodes: list[tuple[LabelSelector, ...]] = field(default_factory=list)


class _Builder:
    def __init__(self, resources: Resources, namespace: str) -> None:
        self.res = resources
        self.namespace = namespace
        self.errors: list[str] = []
        self.transient: list[bool] = []
        self.warnings: list[str] = list(resources.notes)
        self.node_labels: list[tuple[str, Mapping[str, str]]] = [
            (str((n.get("metadata") or {}).get("name", "")), _labels(n)) for n in resources.nodes
        ]

    # ------------------------------------------------------------------------------ reporting
    def fail(self, obj: MetalLBResource | str, problem: _Problem) -> None:
        ref = obj if isinstance(obj, str) else obj.ref
        where = f"{problem.field}: " if problem.field else ""
        self.errors.append(f"{ref}: {where}{problem.message}")
        self.transient.append(problem.transient)

    def guarded(self, items: Iterable[R], fn: Callable[[R], Any]) -> list[tuple[R, Any]]:
        """Run ``fn`` on each item, recording _Problems; return the (item, result) pairs that passed."""
        out = []
        for item in items:
            try:
                out.append((item, fn(item)))
            except _Problem as p:
                self.fail(item, p)
        return out

    # ------------------------------------------------------------------------------ helpers
    def in_namespace(self, items: Sequence[R]) -> list[R]:
        """Keep the objects of MetalLB's namespace (as its webhooks enforce), sorted by name."""
        kept = []
        for obj in items:
            if obj.namespace and obj.namespace != self.namespace:
                self.fail(
                    obj,
                    _Problem(
                        f"resource must be created in {self.namespace} namespace",
                        field=f"metadata.namespace {goq(obj.namespace)}",
                    ),
                )
                continue
            kept.append(obj)
        return sorted(kept, key=lambda o: o.name)

    def selectors(
        self, sels: Sequence[LabelSelectorModel], kind: str, field: str,
        invalid: Callable[[LabelSelectorModel, str], str] | None = None,
    ) -> tuple[LabelSelector, ...]:
        """validateLabelSelectorDuplicate, then LabelSelectorAsSelector with the caller's MetalLB message."""
        self.no_duplicate_selectors(sels, kind, field)
        return self.parse_selectors(sels, field, invalid)

    @staticmethod
    def no_duplicate_selectors(sels: Sequence[LabelSelectorModel], kind: str, field: str) -> None:
        """validateLabelSelectorDuplicate: duplicate values, expressions, then selectors, in Go's %q text."""
        canon = [s.canonical() for s in sels]
        for i, sel in enumerate(sels):
            for e in sel.match_expressions:
                _no_duplicates(e.values, "match expression value in label selector", f"{field}[{i}]")
            exprs = [(e.key, e.operator, tuple(sorted(e.values))) for e in sel.match_expressions]
            for a in range(len(exprs)):
                for b in range(a + 1, len(exprs)):
                    if exprs[a] == exprs[b]:
                        key, op, values = exprs[a]
                        shown = "{" + f"{goq(key)} {goq(op)} [" + " ".join(map(goq, values)) + "]}"
                        raise _Problem(f"duplicate definition of match expressions {shown}", field=f"{field}[{i}]")
            for j in range(i + 1, len(sels)):
                if canon[i] == canon[j]:
                    raise _Problem(f"duplicate definition of {kind} {sel.go_q()}", field=field)

    @staticmethod
    def parse_selectors(
        sels: Sequence[LabelSelectorModel], field: str,
        invalid: Callable[[LabelSelectorModel, str], str] | None = None,
    ) -> tuple[LabelSelector, ...]:
        """LabelSelectorAsSelector on each; ``invalid(selector, apimachinery's error)`` is MetalLB's message
        (filterWithLabelSelector's ``<error>; invalid label selector {...}`` unless the caller says otherwise)."""
        out = []
        for i, sel in enumerate(sels):
            try:
                out.append(sel.to_selector())
            except SelectorError as err:
                message = invalid(sel, str(err)) if invalid else f"{err}{JOIN}invalid label selector {sel.go_v()}"
                raise _Problem(message, field=f"{field}[{i}]") from None
        return tuple(out)

    def nodes_share(self, a: tuple[LabelSelector, ...], b: tuple[LabelSelector, ...]) -> bool:
        """Whether two node selections share one of the Nodes given (MetalLB's BGPAdvertisement.Nodes sets, which
        are empty when no Node is known: then nothing is shared)."""
        sa = {n for n, lbl in self.node_labels if _any(a, lbl)}
        return any(n in sa for n, lbl in self.node_labels if _any(b, lbl))

    # ------------------------------------------------------------------------------ steps
    def run(self) -> t.Config:
        res = self.res
        pools = self.in_namespace(res.pools)
        l2_ads = self.in_namespace(res.l2_advertisements)
        bgp_ads = self.in_namespace(res.bgp_advertisements)
        peers = self.in_namespace(res.bgp_peers)
        bfds = self.in_namespace(res.bfd_profiles)
        communities = self.in_namespace(res.communities)

        peers = self.unsupported_features(peers)
        bfd_profiles = self.bfd_profiles(bfds)
        parsed_peers = self.peers(peers, bfd_profiles)
        aliases = self.community_aliases(communities)
        pool_infos = self.pools(pools)
        self.l2_advertisements(l2_ads, pool_infos)
        bgp_ads = self.duplicate_bgp_advertisements(bgp_ads)
        self.bgp_advertisements(bgp_ads, pool_infos, dict(aliases))

        final_pools = tuple(
            replace(info.pool, l2_advertisements=tuple(info.l2), bgp_advertisements=tuple(info.bgp))
            for _, info in sorted(pool_infos.items())
        )
        config = t.Config(
            pools=final_pools,
            peers=tuple(sorted(parsed_peers.values(), key=lambda p: p.name)),
            bfd_profiles=tuple(sorted(bfd_profiles.values(), key=lambda b: b.name)),
            communities=tuple(sorted(aliases)),
        )
        self.bfd_echo_ipv6(config)
        return config

    def unsupported_features(self, peers: list[BGPPeer]) -> list[BGPPeer]:
        """The features ironlb refuses (see the decision table), checked first like MetalLB's mode check."""
        for extras in self.res.bgp_extras:
            ns = (extras.get("metadata") or {}).get("namespace") or self.namespace
            if ns == self.namespace:
                self.errors.append(
                    'ConfigMap "bgpextras": data.extras: BGP extras (raw FRR configuration) is not supported by '
                    "ironlb, which does not run FRR; remove the ConfigMap"
                )
                self.transient.append(False)
        kept = []
        for p in peers:
            s = p.spec
            addr = s.peer_address
            bad = []
            if s.vrf:
                bad.append(
                    _Problem(
                        f"VRF is not supported by ironlb (peer {addr} has vrf set on native bgp mode): "
                        "ironlb's BGP and BFD sessions run in the default routing table only; VRF support was not "
                        "built because the kernel ironlb is tested on has no vrf link type, so it could not be "
                        "tested; remove spec.vrf",
                        field=f"spec.vrf {goq(s.vrf)}",
                    )
                )
            if s.interface and p.metadata.annotations.get(t.PASSIVE_ANNOTATION) == "true":
                bad.append(
                    _Problem(
                        "a passive unnumbered peer is not supported by ironlb: it dials unnumbered peers only (their "
                        f"address is learned on the link); remove the ironlb.io/passive annotation from peer {p.name}",
                        field=f"spec.interface {goq(s.interface)}",
                    )
                )
            if s.interface and not s.peer_address and interface_name_problem(s.interface):
                self.warnings.append(
                    f"{p.ref}: spec.interface {goq(s.interface)}: no Linux interface can have this name "
                    f"({interface_name_problem(s.interface)}): the session will never be established"
                )
            for b in bad:
                self.fail(p, b)
            if s.disable_mp:
                self.warnings.append(
                    f"{p.ref}: spec.disableMP: disable mp is deprecated and has no effect since it's the default "
                    "behavior now"
                )
            if not bad:
                kept.append(p)
        return kept

    def bfd_profiles(self, bfds: list[BFDProfile]) -> dict[str, t.BFDProfile]:
        out: dict[str, t.BFDProfile] = {}
        for i, b in enumerate(bfds, start=1):
            try:
                parsed = _bfd_profile(b, i)
            except _Problem as p:
                self.fail(b, p)
                continue
            if b.name in out:
                self.fail(b, _Problem(f"found duplicate bfd profile name {b.name}", field="metadata.name"))
                continue
            if t.BFD_AUTH_ANNOTATION in b.metadata.annotations:
                try:
                    parsed = replace(parsed, auth=self.bfd_auth(b))
                except _Problem as p:
                    self.fail(b, p)
                    continue
            out[b.name] = parsed
        return out

    def bfd_auth(self, b: BFDProfile) -> t.BFDAuthentication:
        """ironlb's BFD authentication: the Secret named by the profile's annotation, in MetalLB's namespace."""
        name = str(b.metadata.annotations.get(t.BFD_AUTH_ANNOTATION, ""))
        fld = f"metadata.annotations[{t.BFD_AUTH_ANNOTATION}]"
        secret: SecretData | None = None
        for s in self.res.secrets:
            if s.name == name and (s.namespace or self.namespace) == self.namespace:
                secret = s
        if secret is None:
            raise _Problem(
                f"secret {goq(name[:253])} for BFD authentication not found in namespace {goq(self.namespace)}",
                field=fld,
                transient=True,
            )
        where = f"secret {goq(secret.name)}"
        auth_type = secret.data.get("type", "meticulous-keyed-sha1")
        if auth_type not in t.BFD_AUTH_TYPES:
            raise _Problem(
                f"{where}: BFD authentication type {goq(auth_type[:64])} is not supported: "
                f"one of {', '.join(t.BFD_AUTH_TYPES)} (simple password and MD5 are not)",
                field=fld,
            )
        key_id_text = secret.data.get("keyID", "1")
        if not key_id_text.isdigit() or not 0 <= int(key_id_text[:4]) <= 255:
            raise _Problem(f"{where}: keyID {goq(key_id_text[:64])} must be a number in 0-255", field=fld)
        password = secret.data.get("password", "")
        if not 1 <= len(password.encode()) <= 20:
            raise _Problem(f"{where}: password must be 1-20 bytes (a SHA1 authentication key)", field=fld)
        return t.BFDAuthentication(auth_type, int(key_id_text), password)

    def peers(self, peers: list[BGPPeer], bfds: Mapping[str, t.BFDProfile]) -> dict[str, t.Peer]:
        out: dict[str, t.Peer] = {}
        raw: dict[str, BGPPeer] = {}
        for p in peers:
            try:
                peer = self.peer(p)
            except _Problem as prob:
                prob.message = f"parsing peer {p.name} {prob.message}"
                self.fail(p, prob)
                continue
            if peer.bfd_profile and peer.bfd_profile not in bfds:
                self.fail(
                    p,
                    _Problem(
                        f"peer {p.name} referencing non existing bfd profile {peer.bfd_profile}",
                        field=f"spec.bfdProfile {goq(peer.bfd_profile)}",
                        transient=True,
                    ),
                )
                continue
            if p.name in out:
                if raw[p.name] == p:
                    self.fail(p, _Problem(f"peer {p.name} already exists"))
                else:
                    self.fail(p, _Problem(f"duplicate definition of BGPPeer {goq(p.name)}", field="metadata.name"))
                continue
            out[p.name] = peer
            raw[p.name] = p
        return out

    def peer(self, p: BGPPeer) -> t.Peer:
        """MetalLB's peerFromCR (plus the CRD schema checks the apiserver would make)."""
        s = p.spec
        ns = p.namespace or self.namespace
        if s.my_asn == 0:
            raise _Problem("missing local ASN", field="spec.myASN")
        if s.peer_asn == 0 and s.dynamic_asn == "":
            raise _Problem("missing peer ASN and dynamicASN", field="spec.peerASN")
        if s.peer_asn != 0 and s.dynamic_asn != "":
            raise _Problem(
                "both peer ASN and dynamicASN specified", field=f"spec.peerASN {s.peer_asn}, spec.dynamicASN"
            )
        if s.dynamic_asn not in ("", "internal", "external"):
            raise _Problem(f"invalid dynamicASN {s.dynamic_asn}", field="spec.dynamicASN")
        if s.peer_asn == s.my_asn and s.ebgp_multi_hop:
            raise _Problem("invalid ebgp-multihop parameter set for an ibgp peer", field="spec.ebgpMultiHop")
        if s.peer_address == "" and s.interface == "":
            raise _Problem("peer has no Address or Interface specified", field="spec.peerAddress")
        if s.peer_address != "" and s.interface != "":
            raise _Problem("peer has both Address and Interface specified", field="spec.peerAddress, spec.interface")
        local_asn = self.local_asn(p)
        passive = _passive_annotation(p)
        hold, keepalive = _timers(s.hold_time, s.keepalive_time)
        address = _optional_ip(s.peer_address, "invalid BGPPeer address", "spec.peerAddress")
        router_id = _optional_ip(s.router_id, "invalid router ID", "spec.routerID")
        source = _optional_ip(s.source_address, "invalid source IP", "spec.sourceAddress")
        node_selectors = self.selectors(
            s.node_selectors, "nodeSelectors", "spec.nodeSelectors",
            lambda _, err: f"{err}{JOIN}failed to convert peer {p.name} node selector",
        )
        port = 179 if s.peer_port in (None, 0) else s.peer_port
        if not 1 <= port <= 16384:
            raise _Problem(
                f"Invalid value: {port}: spec.peerPort in body should be "
                + ("greater than or equal to 1" if port < 1 else "less than or equal to 16384"),
                field="spec.peerPort",
            )
        connect = None
        if s.connect_time is not None:
            secs = s.connect_time // SECOND if s.connect_time >= 0 else -((-s.connect_time) // SECOND)
            if not 1 <= secs <= 65535:
                raise _Problem(
                    "connect time should be between 1 seconds to 65535",
                    field=f"spec.connectTime {goq(format_duration(s.connect_time))}",
                )
            if (s.connect_time // MILLISECOND) % 1000 != 0:
                raise _Problem(
                    "connect time should contain a whole number of seconds",
                    field=f"spec.connectTime {goq(format_duration(s.connect_time))}",
                )
            connect = s.connect_time / SECOND
        if s.password and s.password_secret.name:
            raise _Problem(
                f"can not have both password and secret ref set in peer config {goq(ns)}/{goq(p.name)}",
                field="spec.password, spec.passwordSecret",
            )
        if any(c in s.password for c in "\n\r"):
            raise _Problem(
                f"password for peer {goq(ns)}/{goq(p.name)} contains invalid characters", field="spec.password"
            )
        password = s.password
        secret_ref = None
        if s.password_secret.name:
            secret_ref = t.SecretRef(s.password_secret.name, s.password_secret.namespace)
            password = self.secret_password(p, ns)
        return t.Peer(
            name=p.name,
            my_asn=s.my_asn,
            peer_asn=s.peer_asn,
            dynamic_asn=s.dynamic_asn,
            address=address,
            interface=s.interface,
            source_address=source,
            port=port,
            hold_time=None if hold is None else hold / SECOND,
            keepalive_time=None if keepalive is None else keepalive / SECOND,
            connect_time=connect,
            router_id=router_id,
            node_selectors=node_selectors,
            password=password,
            password_secret=secret_ref,
            bfd_profile=s.bfd_profile,
            ebgp_multihop=s.ebgp_multi_hop,
            enable_graceful_restart=s.enable_graceful_restart,
            local_asn=local_asn,
            vrf=s.vrf,
            dual_stack_address_family=s.dual_stack_address_family,
            passive=passive,
        )

    def local_asn(self, p: BGPPeer) -> int:
        """``localASN`` after FRR's ``local-as`` rules (MetalLB's FRR modes render it so; its Go code checks nothing).

        FRR refuses ``local-as`` on an iBGP peer and equal to the router's ASN; ironlb refuses the first, and a
        localASN equal to peerASN (the session would turn iBGP on the wire), and takes one equal to myASN as unset.
        """
        s = p.spec
        local = s.local_asn
        if not local:
            return 0
        fld = f"spec.localASN {local}"
        if local == AS_TRANS:
            raise _Problem(f"invalid localASN {local}: AS_TRANS is reserved for 2-octet speakers", field=fld)
        if local == s.my_asn:
            self.warnings.append(f"{p.ref}: {fld}: localASN equals myASN, it has no effect")
            return 0
        if s.dynamic_asn == "internal" or (s.peer_asn != 0 and s.peer_asn == s.my_asn):
            raise _Problem(
                "localASN is allowed only for eBGP peers (peerASN equal to myASN, or dynamicASN internal, is iBGP)",
                field=fld,
            )
        if local == s.peer_asn:
            raise _Problem(
                f"localASN equals peerASN {s.peer_asn}: the session would be iBGP, and localASN is for eBGP peers",
                field=fld,
            )
        return local

    def secret_password(self, p: BGPPeer, ns: str) -> str:
        """passwordFromSecretForPeer: the Secret must be in MetalLB's namespace, basic-auth, with "password"."""
        name = p.spec.password_secret.name
        secret: SecretData | None = None
        for s in self.res.secrets:
            if s.name == name and (s.namespace or self.namespace) == self.namespace:
                secret = s
        suffix = f"{JOIN}failed to parse peer {p.name} password secret"
        fld = f"spec.passwordSecret.name {goq(name)}"
        if secret is None:
            raise _Problem(
                f"secret ref not found for peer config {goq(ns)}/{goq(p.name)}{suffix}", field=fld, transient=True
            )
        sns = secret.namespace or self.namespace
        if secret.type != BASIC_AUTH:
            raise _Problem(
                f"secret type mismatch on {goq(sns)}/{goq(secret.name)}, type {goq(BASIC_AUTH)} is expected {suffix}",
                field=fld,
            )
        if "password" not in secret.data:
            raise _Problem(f"password not specified in the secret {goq(sns)}/{goq(secret.name)}{suffix}", field=fld)
        password = secret.data["password"]
        if any(c in password for c in "\n\r"):
            raise _Problem(f"password secret for peer {goq(ns)}/{goq(p.name)} contains invalid characters", field=fld)
        return password

    def community_aliases(self, crs: Sequence[MetalLBResource]) -> list[tuple[str, t.Community]]:
        out: dict[str, t.Community] = {}
        for cr in crs:
            assert cr.KIND == "Community"
            for i, alias in enumerate(cr.spec.communities):  # type: ignore[union-attr]
                fld = f"spec.communities[{i}]"
                try:
                    value = parse_community(alias.value)
                except CommunityError as err:
                    self.fail(cr, _Problem(f"parsing community {goq(alias.name)}: {err}", field=f"{fld}.value"))
                    continue
                if alias.name in out:
                    self.fail(cr, _Problem(f"duplicate definition of community {goq(alias.name)}", field=f"{fld}.name"))
                    continue
                out[alias.name] = value
        return list(out.items())

    def pools(self, pools: list[IPAddressPool]) -> dict[str, _PoolInfo]:
        out: dict[str, _PoolInfo] = {}
        parsed = [(p, self.parsed_pool(p)) for p in pools]
        index = OverlapIndex(c for _, info in parsed if isinstance(info, _PoolInfo) for c in info.pool.cidrs)
        for p, parsed_info in parsed:
            if isinstance(parsed_info, _Problem):
                parsed_info.message = f"parsing address pool {p.name}: {parsed_info.message}"
                self.fail(p, parsed_info)
                continue
            info = parsed_info
            if p.name in out:
                self.fail(p, _Problem(f"duplicate definition of pool {goq(p.name)}", field="metadata.name"))
                continue
            overlap = False
            for i, (entry, cidrs) in enumerate(info.cidrs_per_address):
                for cidr in cidrs:
                    m = index.first_overlap(cidr)  # the first earlier CIDR it overlaps, as a scan would find
                    if m is not None:
                        self.fail(
                            p,
                            _Problem(
                                f"CIDR {goq(cidr)} in pool {goq(p.name)} overlaps with already defined CIDR "
                                f"{goq(m)}",
                                field=f"spec.addresses[{i}] {goq(entry)}",
                            ),
                        )
                        overlap = True
                        break
                    index.add(cidr)
                if overlap:
                    break
            if not overlap:
                out[p.name] = info
        return out

    def parsed_pool(self, p: IPAddressPool) -> _PoolInfo | _Problem:
        try:
            return self.pool(p)
        except _Problem as prob:
            return prob

    def pool(self, p: IPAddressPool) -> _PoolInfo:
        s = p.spec
        if not p.name:
            raise _Problem("missing pool name", field="metadata.name")
        if not s.addresses:
            raise _Problem("pool has no prefixes defined", field="spec.addresses")
        per_address: list[tuple[str, list[t.IPNetwork]]] = []
        cidrs: list[t.IPNetwork] = []
        for i, entry in enumerate(s.addresses):
            try:
                nets = parse_cidr(entry)
            except AddressError as err:
                raise _Problem(
                    f"invalid CIDR {goq(entry)} in pool {goq(p.name)}: {err}", field=f"spec.addresses[{i}]"
                ) from None
            per_address.append((entry, nets))
            cidrs.extend(nets)
        allocation = self.service_allocation(p) if s.service_allocation is not None else None
        pool = t.Pool(
            name=p.name,
            cidrs=tuple(cidrs),
            auto_assign=True if s.auto_assign is None else s.auto_assign,
            avoid_buggy_ips=s.avoid_buggy_ips,
            service_allocation=allocation,
        )
        return _PoolInfo(pool, dict(p.metadata.labels), per_address)

    def service_allocation(self, p: IPAddressPool) -> t.ServiceAllocation:
        sa = p.spec.service_allocation
        assert sa is not None
        _no_duplicates(
            sa.namespaces, "", "spec.serviceAllocation.namespaces", message="duplicate definition in namespaces field"
        )
        namespaces = set(sa.namespaces)
        if not namespaces and not sa.namespace_selectors and not sa.service_selectors:
            return t.ServiceAllocation(priority=sa.priority, service_selectors=(EVERYTHING,))
        self.no_duplicate_selectors(
            sa.namespace_selectors, "namespaceSelectors", "spec.serviceAllocation.namespaceSelectors"
        )
        self.no_duplicate_selectors(sa.service_selectors, "serviceSelectors", "spec.serviceAllocation.serviceSelectors")
        # addressPoolServiceAllocationsFromCR prints the namespace selector's pointer, the service selector's value.
        ns_sels = self.parse_selectors(
            sa.namespace_selectors, "spec.serviceAllocation.namespaceSelectors",
            lambda sel, err: f"{err}{JOIN}invalid namespace label selector {sel.go_pointer()} in ip pool {p.name}",
        )
        svc_sels = self.parse_selectors(
            sa.service_selectors, "spec.serviceAllocation.serviceSelectors",
            lambda sel, err: f"{err}{JOIN}invalid service label selector {sel.go_v()} in ip pool {p.name}",
        )
        for sel in ns_sels:
            for ns in self.res.namespaces:
                if sel.matches(_labels(ns)):
                    namespaces.add(str((ns.get("metadata") or {}).get("name", "")))
        return t.ServiceAllocation(priority=sa.priority, namespaces=frozenset(namespaces), service_selectors=svc_sels)

    def selected_pools(
        self,
        ad: L2Advertisement | BGPAdvertisement,
        pools: Mapping[str, _PoolInfo],
        pool_selectors: tuple[LabelSelector, ...],
    ) -> list[str]:
        """ipAddressPools + ipAddressPoolSelectors (union, once each); both empty: every pool."""
        names = ad.spec.ip_address_pools
        if not names and not pool_selectors:
            return sorted(pools)
        chosen: list[str] = []
        for i, name in enumerate(names):
            if name not in pools:
                self.warnings.append(
                    f"{ad.ref}: spec.ipAddressPools[{i}]: no valid IPAddressPool named {goq(name)}; "
                    "ignored, as MetalLB does"
                )
            elif name not in chosen:
                chosen.append(name)
        for name in sorted(pools):
            if name not in chosen and _any_strict(pool_selectors, pools[name].labels):
                chosen.append(name)
        return chosen

    def l2_advertisements(self, ads: list[L2Advertisement], pools: dict[str, _PoolInfo]) -> None:
        for ad in ads:
            try:
                parsed, pool_sels = self.l2_advertisement(ad)
            except _Problem as p:
                self.fail(ad, p)
                continue
            for name in self.selected_pools(ad, pools, pool_sels):
                info = pools[name]
                if not _contains_l2(info.l2, parsed):
                    info.l2.append(parsed)

    def l2_advertisement(self, ad: L2Advertisement) -> tuple[t.L2Advertisement, tuple[LabelSelector, ...]]:
        s = ad.spec
        _no_duplicates(s.ip_address_pools, "ipAddressPools", "spec.ipAddressPools")
        node_sels, svc_sels = self.advertisement_selectors(ad.name, s)
        preferred = []
        for i, pref in enumerate(s.preferred_node_selectors):
            fld = f"spec.preferredNodeSelectors[{i}].weight"
            if not 1 <= pref.weight <= 100:
                bound = "greater than or equal to 1" if pref.weight < 1 else "less than or equal to 100"
                raise _Problem(f"Invalid value: {pref.weight}: {fld} in body should be {bound}", field=fld)
            try:
                sel = pref.preference.to_selector(sort_values=False)
            except SelectorError as err:
                raise _Problem(
                    f"{err}{JOIN}invalid preferred node selector {pref.preference.go_v(sort_values=False)}{JOIN}"
                    f"failed to parse preferred node selectors for {ad.name}",
                    field=f"spec.preferredNodeSelectors[{i}].preference",
                ) from None
            preferred.append(t.PreferredNode(pref.weight, sel))
        parsed = t.L2Advertisement(
            name=ad.name,
            node_selectors=node_sels,
            interfaces=tuple(s.interfaces),
            service_selectors=tuple(sorted(svc_sels, key=str)),
            preferred_nodes=tuple(preferred),
        )
        return parsed, self.parse_selectors(s.ip_address_pool_selectors, "spec.ipAddressPoolSelectors")

    def no_duplicate_ad_selectors(self, s: L2AdvertisementSpec | BGPAdvertisementSpec) -> None:
        pools = "ipAddressPoolSelectors"
        self.no_duplicate_selectors(s.ip_address_pool_selectors, pools, f"spec.{pools}")
        self.no_duplicate_selectors(s.node_selectors, "nodeSelectors", "spec.nodeSelectors")
        self.no_duplicate_selectors(s.service_selectors, "serviceSelectors", "spec.serviceSelectors")

    def advertisement_selectors(
        self, name: str, s: L2AdvertisementSpec | BGPAdvertisementSpec
    ) -> tuple[tuple[LabelSelector, ...], tuple[LabelSelector, ...]]:
        """l2/bgpAdvertisementFromCR: the three duplicate checks, then the node selectors
        (filterWithLabelSelector) and the service selectors (parseSelectors), each with its context line."""
        self.no_duplicate_ad_selectors(s)
        node_sels = self.parse_selectors(
            s.node_selectors, "spec.nodeSelectors",
            lambda sel, err: f"{err}{JOIN}invalid label selector {sel.go_v()}{JOIN}"
            f"failed to parse node selector for {name}",
        )
        svc_sels = self.parse_selectors(
            s.service_selectors, "spec.serviceSelectors",
            lambda sel, err: f"invalid service selector {sel.go_v()}: {err}{JOIN}"
            f"failed to parse service selector for {name}",
        )
        return node_sels, svc_sels

    def duplicate_bgp_advertisements(self, ads: list[BGPAdvertisement]) -> list[BGPAdvertisement]:
        kept: list[BGPAdvertisement] = []
        for j, ad in enumerate(ads):
            dup = next((i for i in range(j) if ads[i] == ad), None)
            if dup is not None:
                self.fail(
                    ad,
                    _Problem(
                        f"duplicate definition of bgpadvertisements. advertisement {dup + 1} and {j + 1} are equal"
                    ),
                )
                continue
            if any(k.name == ad.name for k in kept):
                self.fail(
                    ad, _Problem(f"duplicate definition of BGPAdvertisement {goq(ad.name)}", field="metadata.name")
                )
                continue
            kept.append(ad)
        return kept

    def bgp_advertisements(
        self, ads: list[BGPAdvertisement], pools: dict[str, _PoolInfo], aliases: Mapping[str, t.Community]
    ) -> None:
        for ad in ads:
            try:
                parsed, pool_sels = self.bgp_advertisement(ad, aliases)
                targets = self.selected_pools(ad, pools, pool_sels)
                for name in targets:
                    self.check_bgp_per_pool(parsed, pools[name])
            except _Problem as p:
                self.fail(ad, p)
                continue
            for name in targets:
                pools[name].bgp.append(parsed)
                pools[name].bgp_nodes.append(parsed.node_selectors)

    def bgp_advertisement(
        self, ad: BGPAdvertisement, aliases: Mapping[str, t.Community]
    ) -> tuple[t.BGPAdvertisement, tuple[LabelSelector, ...]]:
        s = ad.spec
        _no_duplicates(s.ip_address_pools, "ipAddressPools", "spec.ipAddressPools")
        _no_duplicates(s.communities, "community", "spec.communities")
        _no_duplicates(s.peers, "peers", "spec.peers")
        self.no_duplicate_ad_selectors(s)
        if s.service_selectors:
            if s.aggregation_length is not None and s.aggregation_length != 32:
                raise _Problem(
                    "serviceSelectors and aggregationLength are mutually exclusive, both cannot be set in " + ad.name,
                    field=f"spec.aggregationLength {s.aggregation_length}",
                )
            if s.aggregation_length_v6 is not None and s.aggregation_length_v6 != 128:
                raise _Problem(
                    "serviceSelectors and aggregationLengthV6 are mutually exclusive, both cannot be set in " + ad.name,
                    field=f"spec.aggregationLengthV6 {s.aggregation_length_v6}",
                )
        agg = 32 if s.aggregation_length is None else s.aggregation_length
        if agg < 1:
            raise _Problem(
                f"Invalid value: {agg}: spec.aggregationLength in body should be greater than or equal to 1",
                field="spec.aggregationLength",
            )
        if agg > 32:
            raise _Problem(f"invalid aggregation length {agg} for IPv4", field="spec.aggregationLength")
        agg6 = 128 if s.aggregation_length_v6 is None else s.aggregation_length_v6
        if agg6 > 128:
            raise _Problem(f"invalid aggregation length {agg6} for IPv6", field="spec.aggregationLengthV6")
        if agg6 < 0:
            raise _Problem(
                f"Invalid value: {agg6}: spec.aggregationLengthV6 in body should be greater than or equal to 0",
                field="spec.aggregationLengthV6",
            )
        communities = set()
        for i, c in enumerate(s.communities):
            if c in aliases:
                communities.add(aliases[c])
                continue
            try:
                communities.add(parse_community(c))
            except CommunityError as err:
                raise _Problem(
                    f"{err}{JOIN}invalid community {goq(c)} in BGP advertisement",
                    field=f"spec.communities[{i}]",
                    transient=err.is_format,
                ) from None
        weighted = _link_bandwidth_annotation(ad)
        node_sels, svc_sels = self.advertisement_selectors(ad.name, s)
        parsed = t.BGPAdvertisement(
            name=ad.name,
            aggregation_length=agg,
            aggregation_length_v6=agg6,
            local_pref=s.local_pref,
            communities=frozenset(communities),
            node_selectors=node_sels,
            peers=tuple(s.peers),
            service_selectors=tuple(sorted(svc_sels, key=str)),
            weight_by_endpoints=weighted,
        )
        # Native mode's poolSelectorsForBGP parses these before anything is sorted, and says only the second line.
        return parsed, self.parse_selectors(
            s.ip_address_pool_selectors, "spec.ipAddressPoolSelectors",
            lambda sel, err: f"{err}{JOIN}invalid label selector {sel.go_v(sort_values=False)}",
        )

    def check_bgp_per_pool(self, adv: t.BGPAdvertisement, info: _PoolInfo) -> None:
        """validateBGPAdvPerPool: aggregation vs each address entry, then the localPref conflict rule."""
        for entry, cidrs in info.cidrs_per_address:
            if not cidrs:
                continue
            max_length = adv.aggregation_length if cidrs[0].version == 4 else adv.aggregation_length_v6
            lowest = lowest_mask(cidrs)
            if max_length < lowest:
                raise _Problem(
                    f"invalid aggregation length {adv.aggregation_length}: prefix {lowest} in this pool is more "
                    f"specific than the aggregation length for addresses {entry}",
                    field=f"IPAddressPool {goq(info.pool.name)} spec.addresses {goq(entry)}",
                )
        if adv.service_selectors:
            return
        for other in info.bgp:
            if other.service_selectors:
                continue
            if not self.compatible_local_pref(adv, other, info):
                raise _Problem(
                    f"invalid local preference {adv.local_pref}: local preferernce {other.local_pref} was already "
                    "set for the same type of BGP update. Check existing BGP advertisements with common pools and "
                    "aggregation lengths",
                    field=f"spec.localPref (conflicts with BGPAdvertisement {goq(other.name)} on pool "
                    f"{goq(info.pool.name)})",
                )

    def compatible_local_pref(self, new: t.BGPAdvertisement, old: t.BGPAdvertisement, info: _PoolInfo) -> bool:
        """MetalLB's BGPAdvertisementsHaveCompatibleLocalPref: a conflict needs a Node both can apply to."""
        families = frozenset(c.version for _, cidrs in info.cidrs_per_address for c in cidrs[:1])
        if not t.local_prefs_may_collide(new, old, families):
            return True
        return not self.nodes_share(new.node_selectors, old.node_selectors)

    def bfd_echo_ipv6(self, config: t.Config) -> None:
        """validateConfig: BFD echo cannot run for peers that advertise an IPv6 pool."""
        profiles = {b.name: b for b in config.bfd_profiles}

        def echo(peer: t.Peer) -> bool:
            prof = profiles.get(peer.bfd_profile)
            return prof is not None and prof.echo_mode

        for pool in config.pools:
            if 6 not in pool.families:
                continue
            for ad in pool.bgp_advertisements:
                peers = (
                    config.peers
                    if not ad.peers
                    else [config.peers_by_name[n] for n in ad.peers if n in config.peers_by_name]
                )
                for peer in peers:
                    if echo(peer):
                        self.errors.append(
                            f"IPAddressPool {goq(pool.name)}: pool {pool.name} has bgpadvertisement {ad.name} which "
                            f"references peer {peer.name} which has bfd echo enabled, which is not possible"
                        )
                        self.transient.append(False)
                        return


# ---------------------------------------------------------------------------------------- helpers
def _optional_ip(text: str, message: str, field: str) -> str:
    """The canonical form of an optional IP field ("" when unset); MetalLB's ``<message> "<value>"`` if invalid."""
    if not text:
        return ""
    ip = parse_ip(text)
    if ip is None:
        raise _Problem(f"{message} {goq(text)}", field=field)
    return str(ip)


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    raw = (obj.get("metadata") or {}).get("labels") or {}
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


def _any(selectors: tuple[LabelSelector, ...], labels: Mapping[str, str]) -> bool:
    """Node selection: an empty list selects every node."""
    return not selectors or any(s.matches(labels) for s in selectors)


def _any_strict(selectors: tuple[LabelSelector, ...], labels: Mapping[str, str]) -> bool:
    """Pool selection: an empty list selects nothing (the "all pools" case is handled by the caller)."""
    return any(s.matches(labels) for s in selectors)


def _no_duplicates(values: Sequence[str], kind: str, field: str, *, message: str = "") -> None:
    """validateDuplicate: ``duplicate definition of <kind> "<value>"``."""
    seen: set[str] = set()
    for i, v in enumerate(values):
        if v in seen:
            raise _Problem(message or f"duplicate definition of {kind} {goq(v)}", field=f"{field}[{i}] {goq(v)}")
        seen.add(v)


def _timers(ht: int | None, ka: int | None) -> tuple[int | None, int | None]:
    """parseTimers: fill the missing one (hold = 3 x keepalive, keepalive = hold / 3) and check them."""
    if ht is None and ka is None:
        return None, None
    hold = ht if ht is not None else 3 * ka  # type: ignore[operator]
    keepalive = ka if ka is not None else int(ht / 3)  # type: ignore[operator]
    rounded = (abs(hold) // SECOND) * SECOND * (1 if hold >= 0 else -1)
    if rounded != 0 and rounded < 3 * SECOND:
        raise _Problem(
            f"invalid BGPPeer timers: invalid hold time {goq(format_duration(hold))}: must be 0 or >=3s",
            field="spec.holdTime",
        )
    if keepalive > hold:
        raise _Problem(
            f"invalid BGPPeer timers: invalid keepaliveTime {goq(format_duration(keepalive))}, must be lower than "
            f"holdTime {goq(format_duration(hold))}",
            field="spec.keepaliveTime",
        )
    return hold, keepalive


def _bfd_profile(b: BFDProfile, index: int) -> t.BFDProfile:
    """bfdProfileFromCR, with the Go range checks (which match the CRD's)."""
    if not b.name:
        raise _Problem(f"parsing bfd profile #{index}: missing bfd profile name", field="metadata.name")
    s = b.spec
    checks = (
        ("detectMultiplier", s.detect_multiplier, 2, 255, "invalid detect multiplier value"),
        ("receiveInterval", s.receive_interval, 10, 60000, "invalid receive interval value"),
        ("transmitInterval", s.transmit_interval, 10, 60000, "invalid transmit interval value"),
        ("minimumTtl", s.minimum_ttl, 1, 254, "invalid minimum ttl value"),
        ("echoInterval", s.echo_interval, 10, 60000, "invalid echo interval value"),
    )
    for name, value, lo, hi, what in checks:
        if value is not None and not lo <= value <= hi:
            raise _Problem(
                f"parsing bfd profile #{index}: invalid value {value}, must be in {lo}-{hi} range{JOIN}{what}",
                field=f"spec.{name}",
            )
    defaults = t.BFDProfile(name=b.name)
    return t.BFDProfile(
        name=b.name,
        receive_interval=defaults.receive_interval if s.receive_interval is None else s.receive_interval,
        transmit_interval=defaults.transmit_interval if s.transmit_interval is None else s.transmit_interval,
        detect_multiplier=defaults.detect_multiplier if s.detect_multiplier is None else s.detect_multiplier,
        echo_interval=defaults.echo_interval if s.echo_interval is None else s.echo_interval,
        echo_mode=bool(s.echo_mode),
        passive_mode=bool(s.passive_mode),
        minimum_ttl=defaults.minimum_ttl if s.minimum_ttl is None else s.minimum_ttl,
    )


def _contains_l2(existing: list[t.L2Advertisement], new: t.L2Advertisement) -> bool:
    """containsAdvertisement: ads without preferences are attached once per pool when equivalent."""
    if new.preferred_nodes:
        return False
    for ad in existing:
        if ad.preferred_nodes:
            continue
        if (
            ad.all_interfaces == new.all_interfaces
            and set(ad.node_selectors) == set(new.node_selectors)
            and set(ad.interfaces) == set(new.interfaces)
            and ad.service_selectors == new.service_selectors
        ):
            return True
    return False


def _passive_annotation(p: BGPPeer) -> bool:
    """ironlb's ``ironlb.io/passive`` annotation: absent, ``"true"`` or ``"false"`` (anything else is refused)."""
    value = p.metadata.annotations.get(t.PASSIVE_ANNOTATION)
    if value is None or value == "false":
        return False
    if value != "true":
        raise _Problem(
            f"invalid value {goq(str(value)[:64])} for annotation {t.PASSIVE_ANNOTATION}: "
            'must be "true" or "false"',
            field=f"metadata.annotations[{t.PASSIVE_ANNOTATION}]",
        )
    return True


def _link_bandwidth_annotation(ad: BGPAdvertisement) -> bool:
    """ironlb's ``ironlb.io/link-bandwidth`` annotation: absent, or ``ready-endpoints`` (anything else is refused)."""
    value = ad.metadata.annotations.get(t.LINK_BANDWIDTH_ANNOTATION)
    if value is None:
        return False
    if value != t.LINK_BANDWIDTH_READY_ENDPOINTS:
        raise _Problem(
            f"invalid value {goq(str(value)[:64])} for annotation {t.LINK_BANDWIDTH_ANNOTATION} in BGPAdvertisement "
            f"{ad.name}: the only value is {goq(t.LINK_BANDWIDTH_READY_ENDPOINTS)}",
            field=f"metadata.annotations[{t.LINK_BANDWIDTH_ANNOTATION}]",
        )
    return True


# ---------------------------------------------------------------------------------------- API
def build(resources: Resources, *, namespace: str = "metallb-system") -> BuildResult:
    """Validate ``resources`` into a Config plus warnings; raise ConfigError listing every problem.

    An exception no check foresaw (an input shaped in a way nothing expected) is a ConfigError too: whoever
    validates (``ironlb run``, the controller, the speaker) keeps its last valid configuration and reports it.
    """
    builder = _Builder(resources, namespace)
    try:
        config = builder.run()
    except Exception as err:
        raise ConfigError([*builder.errors, f"cannot validate: {type(err).__name__}: {err}"]) from err
    if builder.errors:
        raise ConfigError(builder.errors, transient=all(builder.transient))
    return BuildResult(config, tuple(builder.warnings))


def build_config(resources: Resources, *, namespace: str = "metallb-system") -> t.Config:
    """The validated Config of ``resources`` (MetalLB's ``config.For``); ConfigError if invalid."""
    return build(resources, namespace=namespace).config


__all__ = ["BuildResult", "ConfigError", "build", "build_config"]
