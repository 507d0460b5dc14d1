"""MetalLB's allocator (internal/allocator) with interval sets instead of address enumeration.

The state is in memory only and rebuilt from Service status at start-up. Behaviour, error texts and the order
in which candidate IPs are tried are MetalLB's; the one deliberate difference is determinism: where MetalLB
walks unpinned pools in Go map order (random), ironlb walks them in name order.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from ironlb.cluster.objects import Service, ServicePort
from ironlb.config.types import Config, IPAddress, Pool, is_buggy
from ironlb.ipam.capacity import pool_capacity
from ironlb.ipam.intervals import IntervalSet

IPV4, IPV6, DUAL = "ipv4", "ipv6", "dual"
_VERSION_OF = {IPV4: 4, IPV6: 6}
_FAMILY_OF = {4: IPV4, 6: IPV6}


class AllocationError(Exception):
    """An allocation MetalLB would refuse; the message is MetalLB's."""


class AllocKey(NamedTuple):
    sharing: str
    backend: str


class Alloc(NamedTuple):
    pool: str
    ips: tuple[IPAddress, ...]
    ports: tuple[ServicePort, ...]
    key: AllocKey


class PoolCounters(NamedTuple):
    assigned_ipv4: int
    assigned_ipv6: int
    available_ipv4: int
    available_ipv6: int


def go_quote_ips(ips: Iterable[IPAddress | str]) -> str:
    """Go's ``%q`` of a ``[]net.IP``: ``["10.0.0.1" "fc00::1"]``."""
    return "[" + " ".join(f'"{ip if isinstance(ip, str) else ip_text(ip)}"' for ip in ips) + "]"


_V4_KEY = 1 << 129


def addr_key(ip: IPAddress) -> int:
    """A dict key unique across both families (IPv6 keys are the address; IPv4 keys sit above 2**128)."""
    return int(ip) | _V4_KEY if isinstance(ip, ipaddress.IPv4Address) else int(ip)


def ip_text(ip: IPAddress) -> str:
    """``str(ip)`` through the C library: ipaddress's own formatting dominates the cost of a whole allocation."""
    if ip.version == 4:
        return socket.inet_ntoa(ip.packed)
    text = socket.inet_ntop(socket.AF_INET6, ip.packed)
    return str(ip) if "." in text else text  # the C library writes IPv4-mapped addresses in dotted form


@functools.lru_cache(maxsize=1 << 16)
def parse_ip(text: str) -> IPAddress:
    """Parse an IP without ``ip_address``'s exception round-trip for IPv6 (a hot path at 100k services).

    Cached: a start-up converges each Service twice and reads its cluster IP, requested IP and ingress each time,
    five parses of the same few strings (ipaddress's parser was a third of a 1,000-Service allocation). The
    addresses are immutable; an invalid string raises every time (exceptions are not cached)."""
    return ipaddress.IPv6Address(text) if ":" in text else ipaddress.IPv4Address(text)


def family_of_ips(ips: Sequence[IPAddress]) -> str:
    """MetalLB's ipfamily.ForAddressesIPs."""
    if len(ips) == 1:
        return _FAMILY_OF[ips[0].version]
    if len(ips) == 2:
        if ips[0].version == ips[1].version:
            raise AllocationError(f'IPFamilyForAddresses: same address family {go_quote_ips(ips)}')
        return DUAL
    raise AllocationError(f"IPFamilyForAddresses: invalid ips length {len(ips)} {go_quote_ips(ips)}")


class Allocator:
    """Which service holds which IPs, with MetalLB's sharing rules and per-pool counters."""

    def __init__(self, config: Config | None = None) -> None:
        self._pools: Mapping[str, Pool] = {}
        self._unpinned: tuple[Pool, ...] = ()
        self._pinned: tuple[Pool, ...] = ()  # pinned to namespaces
        self._by_selector: tuple[Pool, ...] = ()  # pinned by service selectors
        self._index: dict[int, tuple[list[int], list[tuple[int, Pool]]]] = {4: ([], []), 6: ([], [])}
        self._capacity: dict[str, tuple[int, int]] = {}
        self._config = Config()
        self._allocs: dict[str, Alloc] = {}
        # Keyed by addr_key(ip): ipaddress objects hash in Python code, which dominated the allocation cost.
        self._ip_key: dict[int, AllocKey] = {}
        self._ports_in_use: dict[int, dict[ServicePort, str]] = {}
        self._services_on_ip: dict[int, set[str]] = {}
        self._by_sharing: dict[str, set[IPAddress]] = {}
        self._used: dict[int, IntervalSet] = {4: IntervalSet(), 6: IntervalSet()}
        self._in_use: dict[str, list[int]] = {}  # pool -> [v4, v6] distinct IPs in use
        # Per CIDR (family, first address): every allocatable address below the hint is in use, so the search
        # for the lowest free address starts there (amortised O(1) when a pool fills up in order).
        self._hint: dict[tuple[int, int], int] = {}
        self.released = 0  # bumped whenever an IP loses its last user: waiting services may now fit
        if config is not None:
            self.set_pools(config)

    # ---- configuration -------------------------------------------------------------------------------

    def set_pools(self, config: Config) -> None:
        """Adopt a new pool set: release allocations no pool covers any more, re-home renamed ones."""
        self._config = config
        self._pools = dict(config.pools_by_name)
        self._unpinned = tuple(p for p in config.pools if p.auto_assign and p.service_allocation is None)

        # MetalLB's Pools.ByNamespace (Go map order, random: ironlb takes name order) and ByServiceSelector (sorted).
        pinnable = [p for p in config.pools if p.auto_assign and p.service_allocation is not None]
        self._pinned = tuple(p for p in pinnable if p.service_allocation and p.service_allocation.namespaces)
        self._by_selector = tuple(
            p for p in pinnable if p.service_allocation and p.service_allocation.service_selectors
        )
        self._capacity = {p.name: pool_capacity(p) for p in config.pools}
        index: dict[int, list[tuple[int, int, Pool]]] = {4: [], 6: []}
        for pool in config.pools:
            for cidr in pool.cidrs:
                index[cidr.version].append((int(cidr.network_address), int(cidr.broadcast_address), pool))
        for version, entries in index.items():
            entries.sort(key=lambda e: e[0])
            self._index[version] = ([e[0] for e in entries], [(e[1], e[2]) for e in entries])
        self._hint = {}
        for svc_key, alloc in list(self._allocs.items()):
            home = self.pool_for(alloc.ips)
            if home is None:
                self.unassign(svc_key)
            elif home.name != alloc.pool:
                self.unassign(svc_key)
                self._assign(svc_key, Alloc(home.name, alloc.ips, alloc.ports, alloc.key))
        self._in_use = {name: counts for name, counts in self._in_use.items() if name in self._pools}

    @property
    def config(self) -> Config:
        return self._config

    def pool_for(self, ips: Sequence[IPAddress]) -> Pool | None:
        """The one pool holding all ``ips`` (honouring avoidBuggyIPs), as MetalLB's poolFor."""
        if not ips:
            return None
        pool = self._pool_containing(ips[0])
        if pool is None:
            return None
        for ip in ips:
            if (pool.avoid_buggy_ips and is_buggy(ip)) or (ip is not ips[0] and self._pool_containing(ip) is not pool):
                return None
        return pool

    def _lower_hint(self, ip: IPAddress) -> None:
        starts, rest = self._index[ip.version]
        n = int(ip)
        i = bisect_right(starts, n) - 1
        if i >= 0 and rest[i][0] >= n:
            key = (ip.version, starts[i])
            if self._hint.get(key, n) > n:
                self._hint[key] = n

    def _pool_containing(self, ip: IPAddress) -> Pool | None:
        starts, rest = self._index[ip.version]
        i = bisect_right(starts, int(ip)) - 1
        if i >= 0 and rest[i][0] >= int(ip):
            return rest[i][1]
        return None

    # ---- queries ---------------------------------------------------------------------------------------

    def pool_of(self, svc_key: str) -> str:
        alloc = self._allocs.get(svc_key)
        return alloc.pool if alloc else ""

    def ips_of(self, svc_key: str) -> tuple[IPAddress, ...]:
        alloc = self._allocs.get(svc_key)
        return alloc.ips if alloc else ()

    def allocations(self) -> Mapping[str, Alloc]:
        return self._allocs

    def services_on(self, ip: IPAddress) -> frozenset[str]:
        return frozenset(self._services_on_ip.get(addr_key(ip), ()))

    def counters(self, pool_name: str) -> PoolCounters:
        cap4, cap6 = self._capacity.get(pool_name, (0, 0))
        used4, used6 = self._in_use.get(pool_name, (0, 0))
        return PoolCounters(used4, used6, cap4 - used4, cap6 - used6)

    def capacity(self, pool_name: str) -> tuple[int, int]:
        return self._capacity.get(pool_name, (0, 0))

    # ---- state changes ---------------------------------------------------------------------------------

    def _assign(self, svc_key: str, alloc: Alloc) -> None:
        self.unassign(svc_key)
        self._allocs[svc_key] = alloc
        counts = self._in_use.setdefault(alloc.pool, [0, 0])
        for ip in alloc.ips:
            k = addr_key(ip)
            old_key = self._ip_key.get(k)
            if old_key is not None and old_key.sharing and old_key.sharing != alloc.key.sharing:
                self._by_sharing[old_key.sharing].discard(ip)
            self._ip_key[k] = alloc.key
            if alloc.key.sharing:
                self._by_sharing.setdefault(alloc.key.sharing, set()).add(ip)
            ports = self._ports_in_use.get(k)
            if ports is None:
                ports = self._ports_in_use[k] = {}
            for port in alloc.ports:
                ports[port] = svc_key
            users = self._services_on_ip.get(k)
            if users is None:
                self._services_on_ip[k] = {svc_key}
                v4 = isinstance(ip, ipaddress.IPv4Address)
                self._used[4 if v4 else 6].add(int(ip))
                counts[0 if v4 else 1] += 1
            else:
                users.add(svc_key)

    def unassign(self, svc_key: str) -> bool:
        """Free the service's IPs; idempotent."""
        alloc = self._allocs.pop(svc_key, None)
        if alloc is None:
            return False
        for ip in alloc.ips:
            k = addr_key(ip)
            ports = self._ports_in_use.get(k, {})
            for port in alloc.ports:
                if ports.get(port) == svc_key:
                    del ports[port]
            users = self._services_on_ip.get(k, set())
            users.discard(svc_key)
            if users:
                continue
            self._services_on_ip.pop(k, None)
            self._ports_in_use.pop(k, None)
            key = self._ip_key.pop(k, None)
            if key is not None and key.sharing:
                same = self._by_sharing.get(key.sharing)
                if same is not None:
                    same.discard(ip)
                    if not same:
                        del self._by_sharing[key.sharing]
            self._used[ip.version].discard(int(ip))
            self._lower_hint(ip)
            counts = self._in_use.get(alloc.pool)
            if counts is not None:
                counts[0 if ip.version == 4 else 1] -= 1
            self.released += 1
        return True

    def check_sharing(self, svc_key: str, ip: IPAddress, ports: Sequence[ServicePort], key: AllocKey) -> str | None:
        """Why ``svc_key`` may not use ``ip`` (MetalLB's checkSharing), or None if it may."""
        k = addr_key(ip)
        existing = self._ip_key.get(k)
        if existing is None:
            return None
        if sharing_error(existing, key) is not None:
            others = sorted(s for s in self._services_on_ip.get(k, ()) if s != svc_key)
            if others:
                return f"can't change sharing key for \"{svc_key}\", address also in use by {','.join(others)}"
        in_use = self._ports_in_use.get(k, {})
        for port in ports:
            owner = in_use.get(port)
            if owner is not None and owner != svc_key:
                return f'port {port} is already in use on "{ip}"'
        return None

    def is_compatible(self, pool: Pool, svc: Service) -> bool:
        """MetalLB's isPoolCompatibleWithService: serviceAllocation namespaces and serviceSelectors."""
        sa = pool.service_allocation
        if sa is None:
            return True
        if sa.namespaces and svc.namespace not in sa.namespaces:
            return False
        if sa.service_selectors:
            return any(sel.matches(svc.labels) for sel in sa.service_selectors)
        return True

    def assign(
        self, svc_key: str, svc: Service, ips: Sequence[IPAddress], ports: Sequence[ServicePort], key: AllocKey
    ) -> None:
        """Give ``ips`` to the service if config and sharing allow it (MetalLB's Assign)."""
        pool = self.pool_for(ips)
        if pool is None:
            raise AllocationError(f"{go_quote_ips(ips)} is not allowed in config")
        if not self.is_compatible(pool, svc):
            raise AllocationError(f"pool {pool.name} not compatible for ip assignment")
        if len(ips) > 2:
            raise AllocationError(f"more than two addresses {go_quote_ips(ips)}")
        if len(ips) == 2 and ips[0].version == ips[1].version:
            raise AllocationError(f'"{ips[0]}" "{ips[1]}" has the same family')
        for ip in ips:
            err = self.check_sharing(svc_key, ip, ports, key)
            if err is not None:
                raise AllocationError(err)
        self._assign(svc_key, Alloc(pool.name, tuple(ips), tuple(ports), key))

    # ---- choosing IPs ------------------------------------------------------------------------------

    def _ip_from_cidr(
        self, lo: int, hi: int, version: int, avoid_buggy: bool, svc_key: str, ports: Sequence[ServicePort],
        key: AllocKey,
    ) -> int | None:
        """The lowest IP of ``[lo, hi]`` that ``check_sharing`` accepts (MetalLB's getIPFromCIDR)."""
        buggy_skip = avoid_buggy and version == 4
        used = self._used[version]
        best: int | None = None
        hint_key = (version, lo)
        x = max(lo, self._hint.get(hint_key, lo))
        while x <= hi:
            if buggy_skip:
                low = x & 0xFF
                if low == 0:
                    x += 1
                elif low == 255:
                    x += 2
                if x > hi:
                    break
            run = used.run_containing(x)
            if run is None:
                best = x
                break
            x = run[1] + 1
        self._hint[hint_key] = x if best is None else best
        # Used IPs are acceptable too when sharing allows: only IPs of this sharing key, or the service's own.
        shared = self._by_sharing.get(key.sharing, ()) if key.sharing else ()
        own = self._allocs.get(svc_key)
        if not shared and own is None:
            return best
        candidates = {int(ip) for ip in (*shared, *(own.ips if own else ())) if ip.version == version}
        for n in sorted(candidates):
            if n < lo or n > hi or (best is not None and n >= best):
                continue
            ip = self._address(n, version)
            if buggy_skip and is_buggy(ip):
                continue
            if self.check_sharing(svc_key, ip, ports, key) is None:
                best = n
                break
        return best

    @staticmethod
    def _address(n: int, version: int) -> IPAddress:
        return ipaddress.IPv4Address(n) if version == 4 else ipaddress.IPv6Address(n)

    def _free_ips_from_pool(
        self, pool: Pool, versions: tuple[int, ...], svc_key: str, ports: Sequence[ServicePort], key: AllocKey
    ) -> dict[int, int]:
        """An IPv4 and/or IPv6 candidate of the pool (as integers, by version): per family, the first CIDR in spec
        order that has one."""
        found: dict[int, int] = {}
        if not key.sharing and svc_key not in self._allocs:
            # Nothing shareable: a family with every address in use has nothing to offer.
            cap, used = self._capacity[pool.name], self._in_use.get(pool.name, (0, 0))
            versions = tuple(v for v in versions if cap[v == 6] > used[v == 6])
        for version, lo, hi in pool.ranges:
            if version not in versions or version in found:
                continue
            n = self._ip_from_cidr(lo, hi, version, pool.avoid_buggy_ips, svc_key, ports, key)
            if n is not None:
                found[version] = n
        return found

    def _check_not_full(
        self, pool: Pool, found: Mapping[int, int], svc_key: str, ports: Sequence[ServicePort], key: AllocKey
    ) -> None:
        """MetalLB's getFreeIPsFromPool text when the pool has no free address in any family.

        A pool with free addresses only in the other family gets ``_select``'s text instead, where MetalLB
        would go on with a nil IP (``["<nil>"] is not allowed in config``).
        """
        if found:
            return
        others = tuple(v for v in (4, 6) if v in pool.families)
        if not self._free_ips_from_pool(pool, others, svc_key, ports, key):
            raise AllocationError(f"no available IPs in pool {pool.name}")

    @staticmethod
    def _select(found: Mapping[int, int], family: str, policy: str, pool_name: str) -> list[IPAddress]:
        """MetalLB's selectIPsForFamilyAndPolicy; dual-stack results are ordered [IPv4, IPv6]."""
        n4, n6 = found.get(4), found.get(6)
        v4 = None if n4 is None else ipaddress.IPv4Address(n4)
        v6 = None if n6 is None else ipaddress.IPv6Address(n6)
        if family in _VERSION_OF:
            ip = v4 if family == IPV4 else v6
            if ip is not None:
                return [ip]
        elif policy == "PreferDualStack":
            if v4 is not None and v6 is not None:
                return [v4, v6]
            if v4 is not None:
                return [v4]
            if v6 is not None:
                return [v6]
        elif v4 is not None and v6 is not None:
            return [v4, v6]
        raise AllocationError(f"no available IPs in pool {pool_name} for {family} IPFamily")

    def _versions_needed(self, family: str) -> tuple[int, ...]:
        return (_VERSION_OF[family],) if family in _VERSION_OF else (4, 6)

    def _best_pool(
        self, pools: Sequence[Pool], svc_key: str, svc: Service, family: str, ports: Sequence[ServicePort],
        key: AllocKey,
    ) -> tuple[Pool, dict[int, int]] | None:
        """MetalLB's findBestPoolForService: first pool that fits, PreferDualStack falling back by family."""
        primary, secondary = 4, 6
        if svc.ip_families and svc.ip_families[0] == "IPv6":
            primary, secondary = 6, 4
        prefer_dual = svc.ip_family_policy == "PreferDualStack" and family == DUAL
        primary_candidate: tuple[Pool, dict[int, int]] | None = None
        secondary_candidate: tuple[Pool, dict[int, int]] | None = None
        versions = self._versions_needed(family)
        for pool in pools:
            if not prefer_dual and not pool.families.issuperset(versions):
                continue  # cannot offer every family the service needs
            found = self._free_ips_from_pool(pool, versions, svc_key, ports, key)
            if family in _VERSION_OF and _VERSION_OF[family] in found:
                return pool, found
            if primary in found and secondary in found:
                return pool, found
            if not prefer_dual:
                continue
            if primary in found and primary_candidate is None:
                primary_candidate = (pool, {primary: found[primary]})
            if secondary in found and secondary_candidate is None:
                secondary_candidate = (pool, {secondary: found[secondary]})
        return primary_candidate or secondary_candidate

    def _allocate_from_pools(
        self, pools: Sequence[Pool], svc_key: str, svc: Service, family: str, ports: Sequence[ServicePort],
        key: AllocKey,
    ) -> list[IPAddress] | None:
        best = self._best_pool(pools, svc_key, svc, family, ports, key)
        if best is None:
            return None
        pool, found = best
        try:
            ips = self._select(found, family, svc.ip_family_policy, pool.name)
            self.assign(svc_key, svc, ips, ports, key)
        except AllocationError:
            return None
        return ips

    def pinned_pools(self, svc: Service) -> list[Pool]:
        """Pools pinned to the service's namespace or labels, in MetalLB's pinnedPoolsForService order."""
        candidates = [p for p in self._pinned if svc.namespace in _namespaces(p)]
        candidates += self._by_selector
        return sort_pools([p for p in candidates if self.is_compatible(p, svc)])

    def allocate(
        self, svc_key: str, svc: Service, family: str, ports: Sequence[ServicePort], key: AllocKey
    ) -> list[IPAddress]:
        """Any suitable IP: pinned pools first, then auto-assign pools without serviceAllocation, by name."""
        current = self._allocs.get(svc_key)
        if current is not None:
            self.assign(svc_key, svc, current.ips, ports, key)
            return list(current.ips)
        ips = None
        if self._pinned or self._by_selector:
            ips = self._allocate_from_pools(self.pinned_pools(svc), svc_key, svc, family, ports, key)
        if ips is None:
            ips = self._allocate_from_pools(self._unpinned, svc_key, svc, family, ports, key)
        if ips is None:
            raise AllocationError("no available IPs")
        return ips

    def allocate_from_pool(
        self, svc_key: str, svc: Service, family: str, pool_name: str, ports: Sequence[ServicePort], key: AllocKey
    ) -> list[IPAddress]:
        """An IP from the named pool, autoAssign notwithstanding (the address-pool annotation)."""
        current = self._allocs.get(svc_key)
        if current is not None:
            current_family = family_of_ips(current.ips)
            if svc.ip_family_policy != "PreferDualStack" and current_family != family:
                raise AllocationError(
                    f"IP for wrong family assigned alloc {current_family} service family {family}"
                )
            self.assign(svc_key, svc, current.ips, ports, key)
            return list(current.ips)
        pool = self._pools.get(pool_name)
        if pool is None:
            raise AllocationError(f'unknown pool "{pool_name}"')
        found = self._free_ips_from_pool(pool, self._versions_needed(family), svc_key, ports, key)
        self._check_not_full(pool, found, svc_key, ports, key)
        ips = self._select(found, family, svc.ip_family_policy, pool_name)
        self.assign(svc_key, svc, ips, ports, key)
        return ips

    def allocate_additional_family(
        self, svc_key: str, svc: Service, existing: IPAddress, pool_name: str, ports: Sequence[ServicePort],
        key: AllocKey,
    ) -> IPAddress:
        """PreferDualStack top-up: the missing family from the same pool, keeping the existing IP."""
        version = 6 if existing.version == 4 else 4
        pool = self._pools.get(pool_name)
        if pool is None:
            raise AllocationError(f'unknown pool "{pool_name}"')
        found = self._free_ips_from_pool(pool, (version,), svc_key, ports, key)
        self._check_not_full(pool, found, svc_key, ports, key)
        extra = self._select(found, _FAMILY_OF[version], "SingleStack", pool_name)[0]
        self.assign(svc_key, svc, [existing, extra], ports, key)
        return extra


def _namespaces(pool: Pool) -> frozenset[str]:
    return pool.service_allocation.namespaces if pool.service_allocation else frozenset()


def _priority(pool: Pool) -> int:
    return pool.service_allocation.priority if pool.service_allocation else 0


def sort_pools(pools: Sequence[Pool]) -> list[Pool]:
    """The order MetalLB's sortPools leaves pinned pools in (namespace-pinned first in the input).

    Its comparator says "less" for two unset priorities, and Go's sort.Slice sorts up to 12 elements by
    insertion, so: set priorities ascending, equal ones in input order (namespace-pinned before
    selector-pinned), then the unset ones in reverse input order. A pool pinned both ways is in the input twice;
    only its first place in the result counts. Beyond 12 pools Go switches to pdqsort and its order among
    equals is an artefact of the algorithm; ironlb keeps the same rule there.
    """
    ranked = sorted((p for p in pools if _priority(p) > 0), key=_priority)
    return list(dict.fromkeys(ranked + [p for p in reversed(pools) if _priority(p) <= 0]))


def sharing_error(existing: AllocKey, new: AllocKey) -> str | None:
    """MetalLB's sharingOK."""
    if not existing.sharing:
        return "existing service does not allow sharing"
    if not new.sharing:
        return "new service does not allow sharing"
    if existing.sharing != new.sharing:
        return f'sharing key "{new.sharing}" does not match existing sharing key "{existing.sharing}"'
    if existing.backend != new.backend:
        return f'backend key "{new.backend}" does not match existing sharing key "{existing.backend}"'
    return None
