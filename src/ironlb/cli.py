"""The ``ironlb`` command line. Each subcommand is a thin shell over a pure core."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ironlb import __version__
from ironlb.config import ConfigError

DEFAULT_NAMESPACE = "metallb-system"


def _errors(err: ConfigError) -> int:
    for line in err.messages:
        print(line, file=sys.stderr)
    return 1


def cmd_validate(args: argparse.Namespace) -> int:
    from ironlb.config import build, load_files

    try:
        result = build(load_files(args.files, default_namespace=args.namespace), namespace=args.namespace)
    except ConfigError as err:
        return _errors(err)
    cfg = result.config
    l2 = {a.name for p in cfg.pools for a in p.l2_advertisements}
    bgp = {a.name for p in cfg.pools for a in p.bgp_advertisements}
    counts = [
        (len(cfg.pools), "IPAddressPool"),
        (len(l2), "L2Advertisement"),
        (len(bgp), "BGPAdvertisement"),
        (len(cfg.peers), "BGPPeer"),
        (len(cfg.bfd_profiles), "BFDProfile"),
        (len(cfg.communities), "community alias"),
    ]
    print("valid: " + ", ".join(f"{n} {kind}(s)" for n, kind in counts))
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from ironlb.config import convert_legacy

    try:
        sys.stdout.write(convert_legacy(args.file, args.namespace))
    except ConfigError as err:
        return _errors(err)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from ironlb.plan import plan_files

    try:
        result, warnings = plan_files(args.files, namespace=args.namespace, lb_class=args.lb_class)
    except ConfigError as err:
        return _errors(err)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ironlb", description="A MetalLB-compatible load balancer for bare metal.")
    parser.add_argument("--version", action="version", version=f"ironlb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="validate metallb.io resources or a legacy ConfigMap")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="ironlb's namespace (default %(default)s)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("convert", help="convert a legacy MetalLB ConfigMap to metallb.io resources")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="namespace when the ConfigMap has none")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("plan", help="print, as JSON, what ironlb would do with this cluster state")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="ironlb's namespace (default %(default)s)")
    p.add_argument("--lb-class", default="", help="only handle Services of this loadBalancerClass")
    p.set_defaults(func=cmd_plan)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except BrokenPipeError:  # e.g. `ironlb plan ... | head`
        sys.stderr.close()
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
