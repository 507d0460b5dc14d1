"""Pydantic models of the ``metallb.io`` input resources, shaped exactly like the CRDs (camelCase).

These check *types* the way the apiserver's OpenAPI schema does (an integer field given ``"64500"`` is
refused, unknown fields are dropped like the apiserver prunes them, ``null`` means "absent"). The
*semantic* rules, with MetalLB's wording, live in :mod:`ironlb.config.build`, so that a value the CRD
accepts but MetalLB rejects gets MetalLB's message, not pydantic's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from ironlb.cluster.labels import LabelSelector
from ironlb.config.durations import DurationError, format_duration, parse_go_duration
from ironlb.config.errors import goq

GROUP = "metallb.io"
UINT32_MAX = 4294967295


def _duration(value: Any) -> Any:
    """metav1.Duration: a Go duration *string* (``90s``, ``1m30s``), stored as integer nanoseconds."""
    if isinstance(value, str):
        try:
            return parse_go_duration(value)
        except DurationError as err:
            raise ValueError(str(err)) from None
    raise ValueError('must be a duration string such as "90s" or "1m30s"')


GoDuration = Annotated[int, BeforeValidator(_duration)]
UInt32 = Annotated[int, Field(ge=0, le=UINT32_MAX)]


class _Model(BaseModel):
    """Base: strict types, unknown fields ignored, immutable, ``null`` treated as absent."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, populate_by_name=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    def dump(self) -> dict[str, Any]:
        """The CR's JSON form (camelCase, absent fields omitted), as ``kubectl get -o yaml`` would show."""
        return self.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)


class ObjectMeta(_Model):
    name: str = ""
    namespace: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    # Any values: only ironlb's own keys are read (and checked) where they apply.
    annotations: dict[str, Any] = Field(default_factory=dict)


class LabelSelectorRequirementModel(_Model):
    key: str = ""
    operator: str = ""
    values: list[str] = Field(default_factory=list)


class LabelSelectorModel(_Model):
    """``metav1.LabelSelector``."""

    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: list[LabelSelectorRequirementModel] = Field(default_factory=list, alias="matchExpressions")

    def to_selector(self, *, sort_values: bool = True) -> LabelSelector:
        """Convert to the evaluable selector; raises SelectorError like LabelSelectorAsSelector (after MetalLB's
        validateLabelSelectorDuplicate sorted the values, unless ``sort_values`` is off)."""
        return LabelSelector.from_dict(self.dump(), sort_values=sort_values)

    def _parts(self, quote: Callable[[str], str], sort_values: bool = True) -> str:
        labels = " ".join(f"{quote(k)}:{quote(v)}" for k, v in sorted(self.match_labels.items()))
        exprs = " ".join(
            "{" + f"{quote(e.key)} {quote(e.operator)} ["
            + " ".join(quote(v) for v in (sorted(e.values) if sort_values else e.values)) + "]}"
            for e in self.match_expressions
        )
        return "{map[" + labels + "] [" + exprs + "]}"

    def go_v(self, *, sort_values: bool = True) -> str:
        """Go's ``%v`` of the struct value, as MetalLB prints a selector it cannot parse: ``{map[app:web] []}``
        (values sorted where validateLabelSelectorDuplicate ran before)."""
        return self._parts(str, sort_values)

    def go_q(self) -> str:
        """Go's ``%q`` of the struct value (MetalLB's duplicate message): ``{map["app":"web"] []}``."""
        return self._parts(goq)

    def go_pointer(self) -> str:
        """``%v`` of a *LabelSelector: the generated String() (``&LabelSelector{MatchLabels:map[string]string{...``)."""
        labels = "".join(f"{k}: {v}," for k, v in sorted(self.match_labels.items()))
        exprs = "".join(
            f"LabelSelectorRequirement{{Key:{e.key},Operator:{e.operator},Values:[{' '.join(sorted(e.values))}],}},"
            for e in self.match_expressions
        )
        return (
            f"&LabelSelector{{MatchLabels:map[string]string{{{labels}}},"
            f"MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}"
        )

    def canonical(self) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str, tuple[str, ...]], ...]]:
        """What MetalLB compares for "duplicate definition": labels, then expressions with sorted values."""
        return (
            tuple(sorted(self.match_labels.items())),
            tuple((e.key, e.operator, tuple(sorted(e.values))) for e in self.match_expressions),
        )

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        for e in self.match_expressions:
            parts.append(
                f"{e.key} {e.operator} ({','.join(sorted(e.values))})" if e.values else f"{e.key} {e.operator}"
            )
        return ",".join(parts)


Selectors = list[LabelSelectorModel]


class _Resource(_Model):
    """Common envelope of a namespaced custom resource."""

    KIND: ClassVar[str] = ""
    api_version: str = Field("", alias="apiVersion")
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @property
    def ref(self) -> str:
        """``Kind "name"``, the prefix of every error about this resource."""
        return f"{self.KIND} {goq(self.name)}"


# ---------------------------------------------------------------------------------------------- pools
class ServiceAllocationModel(_Model):
    priority: int = 0
    namespaces: list[str] = Field(default_factory=list)
    namespace_selectors: Selectors = Field(default_factory=list, alias="namespaceSelectors")
    service_selectors: Selectors = Field(default_factory=list, alias="serviceSelectors")


class IPAddressPoolSpec(_Model):
    addresses: list[str] = Field(default_factory=list)
    auto_assign: bool | None = Field(None, alias="autoAssign")
    avoid_buggy_ips: bool = Field(False, alias="avoidBuggyIPs")
    service_allocation: ServiceAllocationModel | None = Field(None, alias="serviceAllocation")


class IPAddressPool(_Resource):
    KIND: ClassVar[str] = "IPAddressPool"
    spec: IPAddressPoolSpec = Field(default_factory=IPAddressPoolSpec)


# ------------------------------------------------------------------------------------- advertisements
class PreferredNodeSelectorModel(_Model):
    weight: int = 0
    preference: LabelSelectorModel = Field(default_factory=LabelSelectorModel)


class L2AdvertisementSpec(_Model):
    ip_address_pools: list[str] = Field(default_factory=list, alias="ipAddressPools")
    ip_address_pool_selectors: Selectors = Field(default_factory=list, alias="ipAddressPoolSelectors")
    node_selectors: Selectors = Field(default_factory=list, alias="nodeSelectors")
    interfaces: list[str] = Field(default_factory=list)
    service_selectors: Selectors = Field(default_factory=list, alias="serviceSelectors")
    preferred_node_selectors: list[PreferredNodeSelectorModel] = Field(
        default_factory=list, alias="preferredNodeSelectors"
    )


class L2Advertisement(_Resource):
    KIND: ClassVar[str] = "L2Advertisement"
    spec: L2AdvertisementSpec = Field(default_factory=L2AdvertisementSpec)


class BGPAdvertisementSpec(_Model):
    aggregation_length: int | None = Field(None, alias="aggregationLength")
    aggregation_length_v6: int | None = Field(None, alias="aggregationLengthV6")
    local_pref: UInt32 = Field(0, alias="localPref")
    communities: list[str] = Field(default_factory=list)
    ip_address_pools: list[str] = Field(default_factory=list, alias="ipAddressPools")
    ip_address_pool_selectors: Selectors = Field(default_factory=list, alias="ipAddressPoolSelectors")
    node_selectors: Selectors = Field(default_factory=list, alias="nodeSelectors")
    peers: list[str] = Field(default_factory=list)
    service_selectors: Selectors = Field(default_factory=list, alias="serviceSelectors")


class BGPAdvertisement(_Resource):
    KIND: ClassVar[str] = "BGPAdvertisement"
    spec: BGPAdvertisementSpec = Field(default_factory=BGPAdvertisementSpec)


# ------------------------------------------------------------------------------------------- BGPPeer
class SecretReference(_Model):
    name: str = ""
    namespace: str = ""


class BGPPeerSpec(_Model):
    """v1beta2 (the storage version, and ironlb's internal form)."""

    my_asn: UInt32 = Field(0, alias="myASN")
    peer_asn: UInt32 = Field(0, alias="peerASN")
    dynamic_asn: str = Field("", alias="dynamicASN")
    peer_address: str = Field("", alias="peerAddress")
    interface: str = ""
    source_address: str = Field("", alias="sourceAddress")
    peer_port: int | None = Field(None, alias="peerPort")
    hold_time: GoDuration | None = Field(None, alias="holdTime")
    keepalive_time: GoDuration | None = Field(None, alias="keepaliveTime")
    connect_time: GoDuration | None = Field(None, alias="connectTime")
    router_id: str = Field("", alias="routerID")
    node_selectors: Selectors = Field(default_factory=list, alias="nodeSelectors")
    password: str = ""
    password_secret: SecretReference = Field(default_factory=SecretReference, alias="passwordSecret")
    bfd_profile: str = Field("", alias="bfdProfile")
    enable_graceful_restart: bool = Field(False, alias="enableGracefulRestart")
    ebgp_multi_hop: bool = Field(False, alias="ebgpMultiHop")
    vrf: str = ""
    disable_mp: bool = Field(False, alias="disableMP")
    dual_stack_address_family: bool = Field(False, alias="dualStackAddressFamily")
    local_asn: UInt32 = Field(0, alias="localASN")

    def dump(self) -> dict[str, Any]:
        out = super().dump()
        for key in ("holdTime", "keepaliveTime", "connectTime"):
            if key in out:
                out[key] = format_duration(out[key])
        return out


class BGPPeer(_Resource):
    KIND: ClassVar[str] = "BGPPeer"
    spec: BGPPeerSpec = Field(default_factory=BGPPeerSpec)


class LegacyMatchExpression(_Model):
    key: str = ""
    operator: str = ""
    values: list[str] = Field(default_factory=list)


class LegacyNodeSelector(_Model):
    """v1beta1's own node selector type (converted to metav1.LabelSelector by the conversion webhook)."""

    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")
    match_expressions: list[LegacyMatchExpression] = Field(default_factory=list, alias="matchExpressions")


class BGPPeerSpecV1beta1(_Model):
    my_asn: UInt32 = Field(0, alias="myASN")
    peer_asn: UInt32 = Field(0, alias="peerASN")
    peer_address: str = Field("", alias="peerAddress")
    source_address: str = Field("", alias="sourceAddress")
    peer_port: int | None = Field(None, alias="peerPort")
    hold_time: GoDuration | None = Field(None, alias="holdTime")
    keepalive_time: GoDuration | None = Field(None, alias="keepaliveTime")
    router_id: str = Field("", alias="routerID")
    node_selectors: list[LegacyNodeSelector] = Field(default_factory=list, alias="nodeSelectors")
    password: str = ""
    bfd_profile: str = Field("", alias="bfdProfile")
    ebgp_multi_hop: bool = Field(False, alias="ebgpMultiHop")


class BGPPeerV1beta1(_Resource):
    """The deprecated v1beta1 BGPPeer; only ever used through :meth:`to_v1beta2`."""

    KIND: ClassVar[str] = "BGPPeer"
    spec: BGPPeerSpecV1beta1 = Field(default_factory=BGPPeerSpecV1beta1)

    def to_v1beta2(self) -> BGPPeer:
        """The conversion MetalLB's webhook performs: same fields, node selectors as metav1.LabelSelector."""
        s = self.spec
        selectors = [
            LabelSelectorModel(
                matchLabels=dict(ns.match_labels),
                matchExpressions=[
                    LabelSelectorRequirementModel(key=e.key, operator=e.operator, values=list(e.values))
                    for e in ns.match_expressions
                ],
            )
            for ns in s.node_selectors
        ]
        spec = BGPPeerSpec(
            myASN=s.my_asn,
            peerASN=s.peer_asn,
            peerAddress=s.peer_address,
            sourceAddress=s.source_address,
            peerPort=s.peer_port,
            holdTime=None,
            keepaliveTime=None,
            routerID=s.router_id,
            nodeSelectors=selectors,
            password=s.password,
            bfdProfile=s.bfd_profile,
            ebgpMultiHop=s.ebgp_multi_hop,
        )
        # Durations are already nanoseconds: bypass the string validator.
        spec = spec.model_copy(update={"hold_time": s.hold_time, "keepalive_time": s.keepalive_time})
        return BGPPeer(apiVersion=f"{GROUP}/v1beta2", kind="BGPPeer", metadata=self.metadata, spec=spec)


# ---------------------------------------------------------------------------------- BFD, Community
class BFDProfileSpec(_Model):
    receive_interval: UInt32 | None = Field(None, alias="receiveInterval")
    transmit_interval: UInt32 | None = Field(None, alias="transmitInterval")
    detect_multiplier: UInt32 | None = Field(None, alias="detectMultiplier")
    echo_interval: UInt32 | None = Field(None, alias="echoInterval")
    echo_mode: bool | None = Field(None, alias="echoMode")
    passive_mode: bool | None = Field(None, alias="passiveMode")
    minimum_ttl: UInt32 | None = Field(None, alias="minimumTtl")


class BFDProfile(_Resource):
    KIND: ClassVar[str] = "BFDProfile"
    spec: BFDProfileSpec = Field(default_factory=BFDProfileSpec)


class CommunityAlias(_Model):
    name: str = ""
    value: str = ""


class CommunitySpec(_Model):
    communities: list[CommunityAlias] = Field(default_factory=list)


class Community(_Resource):
    KIND: ClassVar[str] = "Community"
    spec: CommunitySpec = Field(default_factory=CommunitySpec)


MetalLBResource = IPAddressPool | L2Advertisement | BGPAdvertisement | BGPPeer | BFDProfile | Community

# (apiVersion, kind) -> model. v1beta1 BGPPeer is converted on read.
MODELS: dict[tuple[str, str], type[_Resource]] = {
    (f"{GROUP}/v1beta1", "IPAddressPool"): IPAddressPool,
    (f"{GROUP}/v1beta1", "L2Advertisement"): L2Advertisement,
    (f"{GROUP}/v1beta1", "BGPAdvertisement"): BGPAdvertisement,
    (f"{GROUP}/v1beta1", "BFDProfile"): BFDProfile,
    (f"{GROUP}/v1beta1", "Community"): Community,
    (f"{GROUP}/v1beta1", "BGPPeer"): BGPPeerV1beta1,
    (f"{GROUP}/v1beta2", "BGPPeer"): BGPPeer,
}
# Status-only kinds that ironlb reads nothing from.
IGNORED_KINDS = frozenset({"ConfigurationState", "ServiceL2Status", "ServiceBGPStatus"})


class ResourceError(ValueError):
    """A document that does not fit the CRD schema; one message per bad field."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


def _describe(error: Any) -> str:
    loc = ""
    for part in error["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    msg = str(error["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if error["type"] == "missing":
        return f"{loc}: {msg}"
    return f"{loc}: {msg} (got {error['input']!r})"


def parse_resource(doc: dict[str, Any]) -> MetalLBResource:
    """Validate one ``metallb.io`` document into its model (v1beta1 BGPPeer converted to v1beta2).

    Raises ResourceError naming the resource, each bad field and its value.
    """
    api_version = doc.get("apiVersion")
    kind = doc.get("kind")
    meta = doc.get("metadata")
    name = meta.get("name", "") if isinstance(meta, dict) else ""
    ref = f"{kind} {goq(name)}"
    model = MODELS.get((str(api_version), str(kind)))
    if model is None:
        raise ResourceError([f"{ref}: unsupported apiVersion/kind {api_version}/{kind}"])
    try:
        obj = model.model_validate(doc)
    except ValidationError as err:
        raise ResourceError([f"{ref}: {_describe(e)}" for e in err.errors()]) from None
    if isinstance(obj, BGPPeerV1beta1):
        return obj.to_v1beta2()
    assert isinstance(obj, IPAddressPool | L2Advertisement | BGPAdvertisement | BGPPeer | BFDProfile | Community)
    return obj
