"""Interface selection (reference 5.2) and the sysfs/procfs reader."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from ironlb.layer2.interfaces import (
    DEFAULT_EXCLUDE_PATTERNS,
    IFF_BROADCAST,
    IFF_NOARP,
    IFF_UP,
    InterfaceRecord,
    compile_exclude,
    read_interfaces,
    read_ipv6_addresses,
    select_interfaces,
)
from ironlb.layer2.wire.ethernet import mac_from_str

MAC = mac_from_str("02:00:00:00:00:aa")
LL = IPv6Address("fe80::aa")
UP_BCAST = IFF_UP | IFF_BROADCAST | 0x1000  # 0x1000 = IFF_MULTICAST


def rec(name: str = "eth0", flags: int = UP_BCAST, **kw: object) -> InterfaceRecord:
    fields: dict[str, object] = {"index": 2, "mac": MAC, "addresses": (LL,)}
    fields.update(kw)
    return InterfaceRecord(name, flags=flags, **fields)  # type: ignore[arg-type]


def names(records: list[InterfaceRecord]) -> list[str]:
    return [s.name for s in select_interfaces(records)]


def test_plain_ethernet_gets_both_responders() -> None:
    (sel,) = select_interfaces([rec(addresses=(IPv4Address("10.0.0.1"), IPv6Address("fd00::1"), LL))])
    assert (sel.name, sel.index, sel.mac, sel.arp, sel.ndp, sel.link_local) == ("eth0", 2, MAC, True, True, LL)


@pytest.mark.parametrize(
    "name",
    [
        "docker0",
        "cbr0",
        "dummy0",
        "virbr0",
        "lxcbr0",
        "veth1234",
        "lo",
        "cali123",
        "tunl0",
        "flannel.1",
        "kube-ipvs0",
        "cni0",
        "nodelocaldns",
        "lxc12",
    ],
)
def test_default_excludes(name: str) -> None:
    assert names([rec(name)]) == []


@pytest.mark.parametrize("name", ["eth0", "ens3", "bond0", "br0", "eth0.100", "loop", "mycali", "enveth0"])
def test_not_excluded(name: str) -> None:
    assert names([rec(name)]) == [name]


def test_exclude_join_matches_metallb_form() -> None:
    pattern = compile_exclude(["^a$", "^b.*"])
    assert pattern is not None and pattern.pattern == "(^a$)|(^b.*)"
    assert compile_exclude([]) is None
    assert len(DEFAULT_EXCLUDE_PATTERNS) == 14


def test_custom_exclude_list_replaces_default() -> None:
    assert [s.name for s in select_interfaces([rec("veth0"), rec("eth0")], exclude=[r"^eth"])] == ["veth0"]
    assert [s.name for s in select_interfaces([rec("lo")], exclude=[])] == ["lo"]


def test_down_noarp_and_enslaved_are_skipped() -> None:
    assert names([rec(flags=IFF_BROADCAST)]) == []
    assert names([rec(flags=UP_BCAST | IFF_NOARP)]) == []
    assert names([rec(has_master=True)]) == []


def test_interfaces_without_ethernet_mac_are_skipped() -> None:
    assert names([rec(mac=b"")]) == []
    assert names([rec(mac=b"\x00" * 6)]) == []


def test_arp_needs_broadcast_and_ndp_needs_link_local() -> None:
    (no_ll,) = select_interfaces([rec(addresses=(IPv6Address("fd00::1"),))])
    assert no_ll.arp and not no_ll.ndp and no_ll.link_local is None
    (p2p,) = select_interfaces([rec(flags=IFF_UP)])
    assert not p2p.arp and p2p.ndp
    assert names([rec(flags=IFF_UP, addresses=())]) == []


def test_lowest_link_local_is_chosen_and_sorted_by_name() -> None:
    records = [rec("eth1", addresses=(IPv6Address("fe80::b"), IPv6Address("fe80::a"))), rec("eth0")]
    selected = select_interfaces(records)
    assert [s.name for s in selected] == ["eth0", "eth1"]
    assert selected[1].link_local == IPv6Address("fe80::a")


def test_read_ipv6_addresses(tmp_path: Path) -> None:
    path = tmp_path / "if_inet6"
    path.write_text(
        "fe8000000000000000000000000000aa 02 40 20 80     eth0\n"
        "fd000000000000000000000000000001 02 40 00 80     eth0\n"
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "garbage\n"
    )
    assert read_ipv6_addresses(str(path)) == {
        "eth0": [LL, IPv6Address("fd00::1")],
        "lo": [IPv6Address("::1")],
    }
    assert read_ipv6_addresses(str(tmp_path / "missing")) == {}


def test_read_interfaces_from_fake_sysfs(tmp_path: Path) -> None:
    # Names come from if_nameindex(), so fake the sysfs of the real loopback.
    index, name = next((i, n) for i, n in socket.if_nameindex() if n == "lo")
    (tmp_path / "lo").mkdir()
    (tmp_path / "lo" / "flags").write_text("0x1003\n")
    (tmp_path / "lo" / "address").write_text("02:00:00:00:00:aa\n")
    (tmp_path / "lo" / "master").write_text("")
    inet6 = tmp_path / "if_inet6"
    inet6.write_text(f"fe8000000000000000000000000000aa 02 40 20 80 {name}\n")
    records = read_interfaces(str(tmp_path), str(inet6))
    assert records == [InterfaceRecord("lo", index, 0x1003, MAC, has_master=True, addresses=(LL,))]


def test_read_interfaces_of_this_host_does_not_crash() -> None:
    records = read_interfaces()
    assert any(r.name == "lo" for r in records)
    select_interfaces(records)
