"""The start-up import cuts (issue 16, fast start): what each process no longer imports, and that every public
name of the packages imported lazily is still there. Each check runs in a new interpreter (clean ``sys.modules``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.imports import COMMANDS


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _not_imported(command: str, modules: list[str]) -> list[str]:
    code = COMMANDS[command] + f"import sys; print(*[m for m in {modules!r} if m in sys.modules])"
    return _run(code).split()


def test_fast_process_imports_no_configuration_models() -> None:
    assert _not_imported("fast", ["pydantic", "yaml", "ironlb.config.models"]) == []
    # BFD profiles only (ironlb.config.bfdprofile): not the other types and the label selectors behind them
    assert _not_imported("fast", ["ironlb.config.types", "ironlb.cluster.labels"]) == []


def test_fast_process_imports_no_client_or_exposition_stack() -> None:
    """The fast process answers ARP/NDP and runs membership and BFD: no Kubernetes or HTTP client, and no
    prometheus_client (its counters are plain stores the main process exports). ``ssl`` itself comes with asyncio
    (its base event loop imports it), so it is not in this list."""
    assert _not_imported("fast", ["prometheus_client", "httpx2", "httpcore2", "lightkube", "h2", "anyio"]) == []


def test_speaker_imports_no_webhook_server() -> None:
    assert _not_imported("speaker", ["ironlb.webhooks.server"]) == []


def test_speaker_imports_no_certificate_maker_before_a_secure_metrics_port() -> None:
    """``ironlb.webhooks.certs`` (openssl, the webhook and membership secrets) is imported by the metrics port's
    TLS set-up when it makes a self-signed certificate (``--metrics-secure`` without ``--metrics-cert-dir``)."""
    assert _not_imported("speaker", ["ironlb.webhooks", "ironlb.webhooks.certs"]) == []


def test_main_processes_import_no_prometheus_client_before_a_scrape() -> None:
    """ironlb's collectors are plain stores, registered with the global registry at the first scrape."""
    assert _not_imported("speaker", ["prometheus_client"]) == []
    assert _not_imported("run", ["prometheus_client"]) == []


def test_main_processes_import_no_responder_or_bfd_sessions() -> None:
    """The responders and BFD run in the fast process: ``ironlb speaker`` and ``ironlb run`` name them only."""
    internals = ["ironlb.layer2.responder", "ironlb.layer2.fsm", "ironlb.bfd.service", "ironlb.bfd.fsm"]
    assert _not_imported("speaker", internals) == []
    assert _not_imported("run", internals) == []


def test_lazy_packages_still_give_every_name() -> None:
    out = _run(
        COMMANDS["speaker"] + "import types\n"
        "import ironlb.config.build\n"
        "from ironlb.config import Config, Conversion, build, load_files, types as t\n"
        "assert isinstance(build, types.FunctionType) and t.__name__ == 'ironlb.config.types'\n"
        "from ironlb.webhooks import serve_webhooks, certs\n"
        "import ironlb.bfd, ironlb.layer2, ironlb.layer2.responder as r\n"
        "assert [getattr(ironlb.bfd, n) for n in ironlb.bfd.__all__]\n"
        "assert [getattr(ironlb.layer2, n) for n in ironlb.layer2.__all__]\n"
        "assert ironlb.layer2.ALL is r.ALL is r.AllInterfaces.ALL and ironlb.layer2.Responder is r.Responder\n"
        "print('every name resolved')\n"
    )
    assert "every name resolved" in out


def test_main_processes_import_no_membership_core() -> None:
    """The membership runs in the fast process: the main processes read its configuration and views only."""
    core = ["ironlb.membership.fsm", "ironlb.membership.service", "ironlb.membership.gossip"]
    assert _not_imported("speaker", core) == []
    assert _not_imported("run", core) == []


def test_the_membership_package_still_gives_every_name() -> None:
    out = _run(
        "import ironlb.membership as m\n"
        "from ironlb.membership.service import MembershipService, MembershipView\n"
        "assert [getattr(m, n) for n in m.__all__]\n"
        "assert m.MembershipView is MembershipView and m.MembershipService is MembershipService\n"
        "print('every name resolved')\n"
    )
    assert "every name resolved" in out


def test_the_kube_client_imports_no_httpcore2(tmp_path: Path) -> None:
    """The client's own HTTP/1.1 transport (``ironlb.kube.transport``): creating a client (with a cluster CA, as in
    a Pod) no longer imports httpcore2, with h2, hpack and anyio (35-50 ms of CPU at every start of ``ironlb
    speaker``)."""
    import asyncio

    from ironlb.webhooks.certs import generate_ca

    ca, _ = asyncio.run(generate_ca())
    (tmp_path / "ca.crt").write_bytes(ca)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: k, cluster: {{server: 'https://127.0.0.1:6443', certificate-authority: {tmp_path / 'ca.crt'}}}}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    code = (
        "import asyncio, sys\nfrom ironlb.kube.client import KubeClient\n"
        "async def main():\n"
        f"    client = KubeClient.from_kubeconfig({str(kubeconfig)!r})\n"
        "    await client.close()\n"
        "asyncio.run(main())\n"
        "print('ok', *[m for m in ('httpcore2', 'h2', 'hpack', 'anyio') if m in sys.modules])\n"
    )
    assert _run(code).split() == ["ok"]


def test_main_processes_import_no_bgp_sessions_before_a_peer() -> None:
    """The BGP sessions, their FSM and the listener are imported when a BGPPeer selects the node (the speaker's
    first session or listener), so a Layer 2-only node never imports them."""
    sessions = ["ironlb.bgp.session", "ironlb.bgp.fsm", "ironlb.bgp.listener", "ironlb.bgp.unnumbered"]
    assert _not_imported("speaker", sessions) == []
    assert _not_imported("run", sessions) == []


def test_bgp_speaker_without_peers_imports_no_session_and_the_package_gives_every_name() -> None:
    out = _run(
        "import asyncio, sys\n"
        "from ironlb.bgp.speaker import BGPSpeaker\n"
        "from ironlb.bgp.metrics import BGPMetrics\n"
        "sessions = ['ironlb.bgp.session', 'ironlb.bgp.fsm', 'ironlb.bgp.listener']\n"
        "async def main():\n"
        "    s = BGPSpeaker('n1', metrics=BGPMetrics(None), listen_port=None)\n"
        "    await s.update([], {})\n"
        "    assert s.metric_samples() == [] and s.status() == [] and s.peer_states() == []\n"
        "    await s.close()\n"
        "asyncio.run(main())\n"
        "assert not [m for m in sessions if m in sys.modules], sys.modules.keys()\n"
        "import ironlb.bgp as b, ironlb.bgp.listener as listener, ironlb.bgp.config as config\n"
        "assert [getattr(b, n) for n in b.__all__] and b.BGPSession.__module__ == 'ironlb.bgp.session'\n"
        "assert listener.BGP_PORT == config.BGP_PORT == 179\n"
        "print('no session before a peer')\n"
    )
    assert "no session before a peer" in out


def test_speaker_imports_no_configuration_models_before_its_first_build() -> None:
    """The configuration models (pydantic) are imported by the speaker's first configuration build, which runs while
    the apiserver still sends the Services and EndpointSlices, not before the speaker's first request."""
    models = ["pydantic", "ironlb.config.models", "ironlb.config.loader", "ironlb.config.build"]
    assert _not_imported("speaker", models) == []
    out = _run(
        COMMANDS["speaker"] + "import sys\n"
        "from ironlb.speaker.decide import speaker_config\n"
        "pool = {'apiVersion': 'metallb.io/v1beta1', 'kind': 'IPAddressPool',\n"
        "        'metadata': {'name': 'p', 'namespace': 'metallb-system'}, 'spec': {'addresses': ['10.0.0.0/24']}}\n"
        "config = speaker_config([pool], {}, 'metallb-system')\n"
        "assert [p.name for p in config.pools] == ['p'] and 'ironlb.config.models' in sys.modules\n"
        "print('built')\n"
    )
    assert "built" in out


def test_fast_process_imports_no_bfd_sessions_before_a_request() -> None:
    """The fast process creates its BFD manager at its first BFD request (most nodes have none): until then it
    imports neither the sessions nor the BFD profiles, and the responder is ready sooner."""
    bfd = ["ironlb.bfd.service", "ironlb.bfd.speaker", "ironlb.bfd.fsm", "ironlb.bfd.echo", "ironlb.config.bfdprofile"]
    assert _not_imported("fast", bfd) == []


def test_fast_process_imports_no_argparse() -> None:
    """The fast process parses its two options by hand (``ironlb.fastproc.child.parse_args``)."""
    assert _not_imported("fast", ["argparse"]) == []
