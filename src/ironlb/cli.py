"""The ``ironlb`` command line. Each subcommand is a thin shell over a pure core."""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ironlb import __version__

if TYPE_CHECKING:
    from pathlib import Path

    from ironlb.config import ConfigError
    from ironlb.fastproc.spawn import Spawned
    from ironlb.metrics.secure import SecureOptions

DEFAULT_NAMESPACE = "metallb-system"
OFFLINE = ("validate", "convert", "plan", "explain")  # commands that only read: every failure is an error message
EXIT_PROBLEMS = 3  # `ironlb explain`: the explanation lists problems (scripts can tell "explained" from "broken")


def _errors(err: ConfigError) -> int:
    for line in err.messages:
        print(line, file=sys.stderr)
    return 1


def cmd_validate(args: argparse.Namespace) -> int:
    from ironlb.config import ConfigError, build, load_files

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
    from ironlb.config import ConfigError, convert_legacy

    try:
        sys.stdout.write(convert_legacy(args.file, args.namespace))
    except ConfigError as err:
        return _errors(err)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from ironlb.config import ConfigError
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


def cmd_run(args: argparse.Namespace) -> int:
    gc.disable()  # no collection during the imports: ironlb.runtime.tune_gc freezes what they leave
    spawned = _spawn_fast_process(args)
    try:
        return _cmd_run(args, spawned)
    finally:
        gc.enable()  # a refused command line returns before tune_gc()
        if spawned is not None:
            spawned.discard()  # a no-op once the runner has stopped it; else (refused arguments) it goes now


def _spawn_fast_process(args: argparse.Namespace) -> Spawned | None:
    """With ``--fastpath process``, the fast process first thing: it starts while this one imports (see
    :mod:`ironlb.fastproc.spawn`)."""
    if args.fastpath != "process":
        return None
    from ironlb.fastproc.spawn import spawn

    return spawn(args.log_level)


def _cmd_run(args: argparse.Namespace, spawned: Spawned | None) -> int:
    import asyncio
    from pathlib import Path

    from ironlb.config.reading import ReadLimits, parse_size, read_bytes
    from ironlb.fastproc.guard import GuardConfig
    from ironlb.membership.config import MembershipConfig, parse_members
    from ironlb.membership.wire import MIN_SECRET_LEN
    from ironlb.metrics.server import parse_address
    from ironlb.standalone.runner import Runner, RunOptions

    _logging(args.log_level)
    _log_start("run")
    try:
        members = parse_members(args.members) if args.members else {}
        secret = read_bytes(args.secret_file, 64 * 1024).strip() if args.secret_file else None
        ml = MembershipConfig(interval=args.ml_interval, dead_timeout=args.ml_dead_timeout, quorum=args.quorum)
        limits = ReadLimits(parse_size(args.max_file_size), parse_size(args.max_total_size), args.max_files)
        guard = GuardConfig(wedge_timeout=args.wedge_timeout)
        if args.max_files < 1:
            raise ValueError(f"--max-files {args.max_files}: must be at least 1")
    except (OSError, ValueError) as err:
        print(f"ironlb run: {err}", file=sys.stderr)
        return 2
    if members and args.node not in members:
        print(f"ironlb run: --node {args.node} is not one of --members", file=sys.stderr)
        return 2
    if secret is None and set(members) - {args.node} and not args.insecure_no_secret:
        print("ironlb run: --secret-file is required with other --members: membership heartbeats are signed with "
              "it, so that nobody else on the network can declare nodes dead or alive and move the IPs. Create "
              "one and copy it to every member (for example: head -c 32 /dev/urandom | base64 > FILE), or pass "
              "--insecure-no-secret to accept forgeable heartbeats", file=sys.stderr)
        return 2
    if secret is not None and len(secret) < MIN_SECRET_LEN:
        print(f"ironlb run: --secret-file {args.secret_file}: the secret must be at least {MIN_SECRET_LEN} bytes "
              "(for example: head -c 32 /dev/urandom | base64 > FILE)", file=sys.stderr)
        return 2
    state = Path(args.state)
    if not state.is_dir():
        print(f"ironlb run: --state {state} is not a directory", file=sys.stderr)
        return 2
    options = RunOptions(
        state_dir=state,
        node=args.node,
        members=members,
        secret=secret,
        insecure_no_secret=args.insecure_no_secret,
        status_file=Path(args.status_file) if args.status_file else None,
        namespace=args.namespace,
        lb_class=args.lb_class,
        ignore_exclude_lb=args.ignore_exclude_lb,
        membership=ml,
        gratuitous_interval=args.gratuitous_interval,
        gratuitous_duration=args.gratuitous_duration,
        handover_timeout=args.handover_timeout,
        restart_hold=args.restart_hold,
        metrics_address=parse_address(args.metrics_address, 9120),
        test_stall=args.test_stall_on_sigusr1,
        read_limits=limits,
        data_dir=_data_dir(args.data_dir, state, args.node),
        fastpath_process=args.fastpath == "process",
        guard=guard,
        log_level=args.log_level,
    )
    from ironlb.runtime import tune_gc

    tune_gc()
    runner = Runner(options, fastproc_spawned=spawned)
    asyncio.run(runner.run())
    return runner.exit_code


def _data_dir(given: str | None, state: Path, node: str) -> Path | None:
    """``--data-dir``, else ``STATE/.ironlb/NODE`` (hidden: never read as a manifest); ``--data-dir ''``: none."""
    if given is not None:
        return type(state)(given) if given else None
    return state / ".ironlb" / (node.replace("/", "_").lstrip(".") or "node")


def _explain_keys(args: argparse.Namespace) -> list[str] | None:
    if not args.service:
        return None
    name = args.service
    if "/" in name:
        return [name]
    return [f"{args.service_namespace or 'default'}/{name}"]


def cmd_explain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ironlb.config import ConfigError, load_files
    from ironlb.explain.core import explain, what_if
    from ironlb.explain.render import render, render_what_if

    keys = _explain_keys(args)
    try:
        if args.state:
            from ironlb.explain.core import changed_config
            from ironlb.explain.standalone import load_view, status_paths

            files = status_paths(Path(args.status_dir) if args.status_dir else None, [Path(f) for f in args.status])
            view, resources = load_view(Path(args.state), files, namespace=args.namespace, lb_class=args.lb_class,
                                        ignore_exclude_lb=args.ignore_exclude_lb)  # fmt: skip
            new_config = None
            if args.what_if or args.what_if_delete:
                change = load_files([args.what_if], default_namespace=args.namespace) if args.what_if else None
                new_config = changed_config(resources, change, args.what_if_delete, args.namespace)
        else:
            import asyncio

            from ironlb.explain.kube import read_view

            view, new_config = asyncio.run(read_view(
                args.kubeconfig, args.namespace, lb_class=args.lb_class, ignore_exclude_lb=args.ignore_exclude_lb,
                what_if=args.what_if, what_if_delete=args.what_if_delete,
            ))  # fmt: skip
    except ConfigError as err:
        return _errors(err)
    except OSError as err:
        print(f"ironlb explain: {err}", file=sys.stderr)
        return 2
    colour = args.colour == "always" or (args.colour == "auto" and sys.stdout.isatty())
    if new_config is not None:
        result = what_if(view, new_config)
        if keys is not None:
            result["services"] = {k: v for k, v in result["services"].items() if k in keys}
        if args.output == "json":
            json.dump(result, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            sys.stdout.write(render_what_if(result, colour=colour))
        return 0
    result = explain(view, only=keys)
    if args.output == "json":
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(result, colour=colour, details=keys is not None or args.details))
    return EXIT_PROBLEMS if result["problems"] else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ironlb.lab.demo import run_demo

    return run_demo(prefix=args.prefix, trials=args.trials, failover=not args.no_failover, keep_going=args.keep_going)


def cmd_controller(args: argparse.Namespace) -> int:
    import asyncio

    from ironlb.controller.main import RunOptions, env_namespace, run
    from ironlb.runtime import tune_gc

    _logging(args.log_level)
    options = RunOptions(
        namespace=args.namespace or env_namespace(), lb_class=args.lb_class, kubeconfig=args.kubeconfig,
        metrics_host=args.metrics_host,
        port=args.port, health_host=args.metrics_host, health_probe_port=args.health_probe_port,
        pod_name=args.pod_name, leader_elect=args.leader_elect, lease_name=args.leader_elect_lease_name,
        lease_duration=args.leader_elect_lease_duration, renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period, qps=args.kube_api_qps, burst=args.kube_api_burst,
        verbose_http=args.log_level == "all", webhook_mode=args.webhook_mode, webhook_port=args.webhook_port,
        ml_secret_name=args.ml_secret_name, deployment=args.deployment,
        disable_cert_rotation=args.disable_cert_rotation, cert_dir=args.cert_dir,
        metrics_secure=_secure(args, args.metrics_host),
    )
    tune_gc()
    return asyncio.run(run(options))


def cmd_speaker(args: argparse.Namespace) -> int:
    gc.disable()  # no collection during the imports: ironlb.runtime.tune_gc freezes what they leave
    spawned = _spawn_fast_process(args) if args.node_name else None
    try:
        return _cmd_speaker(args, spawned)
    finally:
        gc.enable()  # a refused command line returns before tune_gc()
        if spawned is not None:
            spawned.discard()


def _cmd_speaker(args: argparse.Namespace, spawned: Spawned | None) -> int:
    import asyncio

    from ironlb.fastproc.guard import GuardConfig
    from ironlb.membership.config import MembershipConfig
    from ironlb.runtime import tune_gc
    from ironlb.speaker.main import RunOptions, env_namespace, run
    from ironlb.speaker.speaker import SpeakerOptions

    if not args.node_name:
        print("ironlb speaker: --node-name (or METALLB_NODE_NAME) is required", file=sys.stderr)
        return 2
    _logging(args.log_level)
    _log_start("speaker")
    try:
        ml = MembershipConfig(interval=args.ml_interval, dead_timeout=args.ml_dead_timeout)
    except ValueError as err:
        print(f"ironlb speaker: {err}", file=sys.stderr)
        return 2
    speaker = SpeakerOptions(
        node=args.node_name, namespace=args.namespace or env_namespace(), lb_class=args.lb_class,
        ignore_exclude_lb=args.ignore_exclude_lb, ml_bind_addr=args.ml_bindaddr, ml_bind_port=args.ml_bindport,
        ml_labels=args.ml_labels, ml_secret_key_path=args.ml_secret_key_path, membership=ml,
        fastpath_process=args.fastpath == "process", guard=GuardConfig(wedge_timeout=args.wedge_timeout),
        log_level=args.log_level, restart_hold=args.restart_hold,
    )
    options = RunOptions(
        speaker=speaker, kubeconfig=args.kubeconfig, metrics_host=args.metrics_host, port=args.port,
        health_probe_port=args.health_probe_port, verbose_http=args.log_level == "all",
        metrics_secure=_secure(args, args.metrics_host), qps=args.kube_api_qps, burst=args.kube_api_burst,
        status_qps=args.status_qps, status_burst=args.status_burst,
    )
    tune_gc()
    return asyncio.run(run(options, spawned))


def _hold_seconds(text: str) -> float:
    """A restart hold: 0 (off) up to a minute (the hold's bound on the wire)."""
    value = float(text)
    if not 0 <= value <= 60:
        raise argparse.ArgumentTypeError(f"must be 0..60 seconds, not {text!r}")
    return value


def _handover_seconds(text: str) -> float:
    """A hand-over timeout: finite, 0 (no hand-over) to 60 s (the stop waits for it)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 60:
        raise argparse.ArgumentTypeError(f"must be between 0 and 60 s: {text!r}")
    return value


def _logging(level: str) -> None:
    import logging

    levels = {"all": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
              "error": logging.ERROR, "none": logging.CRITICAL + 1}
    logging.basicConfig(level=levels[level], format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _log_start(command: str) -> None:
    """The first log line, once the imports are done: how long the interpreter and the imports took."""
    import logging

    from ironlb.runtime import age_text

    logging.getLogger("ironlb").info("ironlb %s %s starting (%s)", command, __version__, age_text())


def _metrics_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-secure", action="store_true",
                   help="serve /metrics over HTTPS, to bearer tokens allowed to get /metrics (TokenReview, "
                   "SubjectAccessReview); the probe port then serves no metrics")
    p.add_argument("--metrics-cert-dir", default="", metavar="D",
                   help="with --metrics-secure: tls.crt and tls.key (default: a self-signed certificate)")
    p.add_argument("--tls-min-version", default="VersionTLS12", choices=("VersionTLS12", "VersionTLS13"),
                   help="with --metrics-secure: the lowest TLS version accepted (default %(default)s)")


def _secure(args: argparse.Namespace, host: str) -> SecureOptions | None:
    if not args.metrics_secure:
        return None
    from ironlb.metrics.secure import SecureOptions

    names = ("localhost",) if host in ("0.0.0.0", "::", "127.0.0.1", "") else (host, "localhost")
    return SecureOptions(args.metrics_cert_dir, args.tls_min_version, names)


def _add_fastpath_arguments(p: argparse.ArgumentParser) -> None:
    """Where the latency-critical work runs: the same flags for ``ironlb run`` and ``ironlb speaker``."""
    p.add_argument("--fastpath", choices=("process", "thread"), default="process",
                   help="where membership, the ARP/NDP responders and BFD run: a process of their own (default), "
                   "or a thread of this one (shares the GIL with the heavy work)")
    p.add_argument("--wedge-timeout", type=float, default=30.0, metavar="S",
                   help="with --fastpath process: seconds without a word from the main process after which the "
                   "fast path withdraws and leaves the membership until it speaks again (default %(default)s)")


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

    p = sub.add_parser("run", help="controller and speaker in one process, from a directory of manifests")
    p.add_argument("--state", required=True, metavar="DIR", help="directory of manifests (config and Services)")
    p.add_argument("--node", required=True, metavar="NAME", help="this node's name")
    p.add_argument("--members", default="", metavar="NAME=ADDR,...", help="all speakers, this one included")
    p.add_argument("--secret-file", metavar="F",
                   help="shared secret for the membership protocol (HMAC); required with other --members")
    p.add_argument("--insecure-no-secret", action="store_true",
                   help="run membership without --secret-file: packets are signed with a key derived from the "
                   "member list, which anyone who knows it can forge (keeps two clusters apart, nothing more)")
    p.add_argument("--status-file", metavar="F", help="JSON status, rewritten on every change")
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="ironlb's namespace (default %(default)s)")
    p.add_argument("--lb-class", default="", help="only handle Services of this loadBalancerClass")
    p.add_argument("--ignore-exclude-lb", action="store_true", help="announce from nodes labelled excluded too")
    p.add_argument("--ml-interval", type=float, default=0.1, help="membership heartbeat interval, s")
    p.add_argument("--ml-dead-timeout", type=float, default=0.35, help="silence after which a member is dead, s")
    p.add_argument("--quorum", choices=("auto", "on", "off"), default="auto",
                   help="announce only while a majority of members is reachable (auto: with 3 or more)")
    p.add_argument("--gratuitous-interval", type=float, default=1.1, help="seconds between takeover announcements")
    p.add_argument("--gratuitous-duration", type=float, default=5.0, help="how long takeover announcements last, s")
    p.add_argument(
        "--handover-timeout",
        type=_handover_seconds,
        default=2.0,
        help="an IP given to another node (SIGTERM, or its owner back) is still answered until that node claims it "
        "on the wire, at most this long, s",
    )
    p.add_argument(
        "--restart-hold",
        type=_hold_seconds,
        default=0.0,
        metavar="SECONDS",
        help="a SIGTERM is a restart of this process on a node that stays up: the others keep its IPs in place "
        "(no move, no gratuitous ARP) and answer ARP/NDP for them with this node's MAC until it is back, at most "
        "this long, or until the node stops answering (then the usual failover); 0 (default): a SIGTERM hands the "
        "IPs over",
    )
    p.add_argument("--metrics-address", default="127.0.0.1:9120", metavar="[HOST]:PORT",
                   help="serve /metrics, /healthz, /readyz over plain HTTP, so loopback only by default "
                   "(default %(default)s; :9120 for every address; empty disables)")
    p.add_argument("--max-file-size", default="8Mi", metavar="SIZE",
                   help="largest state directory file read, e.g. 8Mi (default %(default)s)")
    p.add_argument("--max-total-size", default="64Mi", metavar="SIZE",
                   help="most bytes read from the state directory in all (default %(default)s)")
    p.add_argument("--max-files", type=int, default=10_000, metavar="N",
                   help="most entries the state directory may hold, subdirectories included (default %(default)s)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where the node saves its last valid configuration, run again if it restarts while the "
                   "state directory is invalid (default: STATE/.ironlb/NODE; empty: not saved)")
    _add_fastpath_arguments(p)
    p.add_argument("--log-level", choices=("all", "debug", "info", "warn", "error", "none"), default="info")
    # Test hook (hidden): SIGUSR1 keeps the main loop busy this long, to show the fast path does not wait on it.
    p.add_argument("--test-stall-on-sigusr1", type=float, default=0.0, metavar="S", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_run)

    import os

    p = sub.add_parser(
        "explain",
        help="why a Service has its IP (or none), who announces it, who could; --what-if a configuration change",
        description="Against a cluster (kubeconfig), or with --state against `ironlb run`'s state directory and "
        "status files. Exit 0, or 3 when problems were found (configuration errors, a Service announced by "
        "nobody or by the wrong node, membership disagreement, a full pool).",
    )
    p.add_argument("service", nargs="?", metavar="[NAMESPACE/]NAME", help="one Service (default: all)")
    p.add_argument("-n", dest="service_namespace", metavar="NS", help="the Service's namespace (default: default)")
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="ironlb's namespace (default %(default)s)")
    p.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG") or None,
        help="kubeconfig file (default: $KUBECONFIG, else in-cluster, else ~/.kube/config)",
    )
    p.add_argument("--state", metavar="DIR", help="explain `ironlb run` nodes from their state directory")
    p.add_argument("--status-dir", metavar="D", help="with --state: a directory of the nodes' status files (*.json)")
    p.add_argument(
        "--status",
        action="append",
        default=[],
        metavar="FILE",
        help="with --state: a node's status file (repeat for each node)",
    )
    p.add_argument(
        "--what-if",
        metavar="FILE",
        help="show what this configuration change (objects replacing those of the same kind and name) "
        "would do to every Service",
    )
    p.add_argument("--what-if-delete", action="append", default=[], metavar="KIND/NAME",
                   help="show what deleting this configuration object (e.g. IPAddressPool/old) would do; repeatable")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.add_argument("--details", action="store_true", help="every Service in full (the default for one Service)")
    p.add_argument("--colour", "--color", choices=("auto", "always", "never"), default="auto")
    p.add_argument("--lb-class", default="", help="the loadBalancerClass ironlb handles")
    p.add_argument("--ignore-exclude-lb", action="store_true", help="the speakers run with --ignore-exclude-lb")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser(
        "demo",
        help="the seed example on a LAN of 3 nodes in network namespaces, failover included",
        description="Root only. Builds a LAN of three nodes running `ironlb run` and a client in network namespaces, "
        "applies the seed example (pool 192.168.1.240-250, my-service), shows which node answers and that the "
        "client reaches it, kills that node and prints the measured failover time; removes everything on exit.",
    )
    p.add_argument("--trials", type=int, default=1, metavar="N", help="failovers to measure (default %(default)s)")
    p.add_argument("--no-failover", action="store_true", help="stop after showing which node answers")
    p.add_argument("--keep-going", action="store_true", help="go on with the next trial when one fails")
    p.add_argument("--prefix", default=None, help="namespace name prefix (default: ilbdemo + random hex)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("controller", help="assign IPs to LoadBalancer Services in a Kubernetes cluster")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or None,
                   help="kubeconfig file (default: $KUBECONFIG, else in-cluster, else ~/.kube/config)")
    p.add_argument("--namespace", default=None,
                   help="ironlb's namespace (default: $METALLB_NAMESPACE, else the pod's, else metallb-system)")
    p.add_argument("--lb-class", default="",
                   help="only handle Services of this loadBalancerClass")
    p.add_argument("--port", type=int, default=9120, help="HTTP port for /metrics (0 disables; default %(default)s)")
    p.add_argument("--health-probe-port", type=int, default=17472,
                   help="HTTP port for /healthz and /readyz (0 disables; default %(default)s)")
    p.add_argument("--metrics-host", default="0.0.0.0", help="address the HTTP ports bind to")
    p.add_argument("--pod-name", default=os.environ.get("METALLB_POD_NAME", ""),
                   help="this pod (ConfigurationState owner, leader identity; $METALLB_POD_NAME)")
    p.add_argument("--log-level", choices=("all", "debug", "info", "warn", "error", "none"), default="info")
    p.add_argument("--leader-elect", action="store_true", help="run as one of several replicas, leader via a Lease")
    p.add_argument("--leader-elect-lease-name", default="ironlb-controller", help="the Lease (default %(default)s)")
    p.add_argument("--leader-elect-lease-duration", type=float, default=15.0, metavar="S")
    p.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, metavar="S")
    p.add_argument("--leader-elect-retry-period", type=float, default=2.0, metavar="S")
    p.add_argument("--kube-api-qps", type=float, default=100.0,
                   help="client-side request rate limit, events apart (0: none; default %(default)s)")
    p.add_argument("--kube-api-burst", type=int, default=200, help="client-side request burst (default %(default)s)")
    p.add_argument("--webhook-mode", choices=("enabled", "disabled", "onlywebhook"), default="enabled",
                   help="serve the validating and conversion webhooks (default %(default)s)")
    p.add_argument("--webhook-port", type=int, default=9443, help="HTTPS port of the webhooks (default %(default)s)")
    p.add_argument("--ml-secret-name", default=os.environ.get("METALLB_ML_SECRET_NAME", "memberlist"),
                   help="the speakers' membership Secret, created when absent (empty: don't)")
    p.add_argument("--disable-cert-rotation", action="store_true",
                   help="use the webhook certificate in --cert-dir instead of managing one")
    p.add_argument("--cert-dir", default="/tmp/k8s-webhook-server/serving-certs", help="with --disable-cert-rotation")
    p.add_argument("--deployment", default=os.environ.get("METALLB_DEPLOYMENT", ""),
                   help="the controller Deployment, owner of the memberlist Secret ($METALLB_DEPLOYMENT)")
    _metrics_flags(p)
    p.set_defaults(func=cmd_controller)

    env = os.environ.get
    p = sub.add_parser("speaker", help="announce LoadBalancer IPs from this Kubernetes node (ARP/NDP, BGP)")
    p.add_argument("--node-name", default=env("METALLB_NODE_NAME", ""), help="this node (required; $METALLB_NODE_NAME)")
    p.add_argument("--kubeconfig", default=env("KUBECONFIG") or None,
                   help="kubeconfig file (default: $KUBECONFIG, else in-cluster, else ~/.kube/config)")
    p.add_argument("--namespace", default=None,
                   help="ironlb's namespace (default: $METALLB_NAMESPACE, else the pod's, else metallb-system)")
    p.add_argument("--lb-class", default="", help="only handle Services of this loadBalancerClass")
    p.add_argument("--ignore-exclude-lb", action="store_true",
                   help="announce from nodes labelled node.kubernetes.io/exclude-from-external-load-balancers too")
    p.add_argument("--port", type=int, default=9120, help="HTTP port for /metrics (0 disables; default %(default)s)")
    p.add_argument("--metrics-host", default="0.0.0.0", help="address the metrics port binds to")
    p.add_argument("--health-probe-port", type=int, default=17472,
                   help="port for /healthz and /readyz on 127.0.0.1 (0 disables; default %(default)s)")
    p.add_argument("--ml-bindaddr", default=env("METALLB_ML_BIND_ADDR", ""),
                   help="membership address, the pod (host) IP ($METALLB_ML_BIND_ADDR)")
    p.add_argument("--ml-bindport", type=int, default=int(env("METALLB_ML_BIND_PORT", "") or 7946),
                   help="membership UDP port ($METALLB_ML_BIND_PORT, default 7946)")
    p.add_argument("--ml-labels", default=env("METALLB_ML_LABELS", ""),
                   help="label selector of the speaker pods, e.g. app=metallb,component=speaker ($METALLB_ML_LABELS)")
    p.add_argument("--ml-secret-key-path", default=env("METALLB_ML_SECRET_KEY_PATH", ""),
                   help="directory with the membership key file `secretkey` ($METALLB_ML_SECRET_KEY_PATH)")
    p.add_argument("--kube-api-qps", type=float, default=50.0,
                   help="client-side request limit, requests/s (default %(default)s)")
    p.add_argument("--kube-api-burst", type=int, default=100, help="client-side request burst (default %(default)s)")
    p.add_argument("--status-qps", type=float, default=400.0,
                   help="limit of the ServiceL2Status/ServiceBGPStatus writes, requests/s (default %(default)s)")
    p.add_argument("--status-burst", type=int, default=400, help="burst of those writes (default %(default)s)")
    p.add_argument("--ml-interval", type=float, default=0.1, help="membership heartbeat interval, s")
    p.add_argument("--ml-dead-timeout", type=float, default=0.35, help="silence after which a member is dead, s")
    _add_fastpath_arguments(p)
    p.add_argument(
        "--restart-hold",
        type=_hold_seconds,
        default=20.0,
        metavar="SECONDS",
        help="a stop (SIGTERM) while this speaker's Node stays up (Ready, not cordoned, not tainted as going away) "
        "is a restart: the other speakers keep its IPs on the node (no move) and answer ARP/NDP for them with its "
        "MAC until it is back, at most this long, or until the node stops answering; 0: every stop hands the IPs "
        "over (default %(default)s)",
    )
    p.add_argument("--log-level", choices=("all", "debug", "info", "warn", "error", "none"), default="info")
    for flag in ("--ml-wan-config", "--frrk8s-namespace", "--bgp-debounce-timeout"):
        p.add_argument(flag, default="", help="accepted for MetalLB compatibility; unused")
    p.add_argument("--frrk8s-secret-passthrough", action="store_true",
                   help="accepted for MetalLB compatibility; unused")
    _metrics_flags(p)
    p.set_defaults(func=cmd_speaker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except BrokenPipeError:  # e.g. `ironlb plan ... | head`
        sys.stderr.close()
        return 1
    except Exception as err:
        if args.command not in OFFLINE:
            raise
        # Hostile input is a configuration error, even when it trips something no check foresaw: no traceback.
        print(f"ironlb {args.command}: cannot process the input: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return code


def kubectl_main() -> int:
    """``kubectl ironlb ...``: kubectl runs ``kubectl-ironlb`` from the PATH with the words after ``ironlb``."""
    return main()


if __name__ == "__main__":
    sys.exit(main())
