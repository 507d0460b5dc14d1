"""Helper for the netns tests: send one crafted NS and print the NA that answers it.

``python ndp_probe.py IFACE DST_MAC SRC TARGET [--with-lladdr] [--timeout S]`` sends a
unicast NS for TARGET to DST_MAC (IPv6 destination TARGET, as a NUD probe), by
default without a source link-layer option, and prints one JSON line describing the
first NA for TARGET that arrives, or ``{"reply": null}``.
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from ipaddress import IPv6Address
from pathlib import Path

from ironlb.layer2.wire.ethernet import ETH_P_IPV6, FrameError, mac_from_str, mac_to_str
from ironlb.layer2.wire.ndp import NeighborAdvertisement, NeighborSolicitation, build_ndp, parse_ndp


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("iface")
    parser.add_argument("dst_mac")
    parser.add_argument("src", type=IPv6Address)
    parser.add_argument("target", type=IPv6Address)
    parser.add_argument("--with-lladdr", action="store_true")
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    our_mac = mac_from_str(Path(f"/sys/class/net/{args.iface}/address").read_text().strip())
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IPV6))
    sock.bind((args.iface, ETH_P_IPV6))
    probe = NeighborSolicitation(
        eth_dst=mac_from_str(args.dst_mac),
        eth_src=our_mac,
        src=args.src,
        dst=args.target,
        target=args.target,
        source_lladdr=our_mac if args.with_lladdr else None,
    )
    sock.send(build_ndp(probe))
    deadline = time.monotonic() + args.timeout
    result: dict[str, object] = {"reply": None}
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            frame = sock.recv(2048)
        except TimeoutError:
            break
        try:
            msg = parse_ndp(frame)
        except FrameError:
            continue
        # Only the answer to our probe: unsolicited NAs to ff02::1 may be in flight too.
        if isinstance(msg, NeighborAdvertisement) and msg.target == args.target and not msg.dst.is_multicast:
            result = {
                "reply": "na",
                "eth_dst": mac_to_str(msg.eth_dst),
                "eth_src": mac_to_str(msg.eth_src),
                "dst": str(msg.dst),
                "hop_limit": msg.hop_limit,
                "solicited": msg.solicited,
                "override": msg.override,
                "target_lladdr": mac_to_str(msg.target_lladdr) if msg.target_lladdr else None,
            }
            break
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
