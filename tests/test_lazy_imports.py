"""The start-up import cuts (issue 16, fast start): what each process no longer imports, and that every public
name of the packages imported lazily is still there. Each check runs in a new interpreter (clean ``sys.modules``)."""

from __future__ import annotations

import subprocess
import sys

from bench.imports import COMMANDS


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _not_imported(command: str, modules: list[str]) -> list[str]:
    code = COMMANDS[command] + f"import sys; print(*[m for m in {modules!r} if m in sys.modules])"
    return _run(code).split()


def test_fast_process_imports_no_configuration_models_nor_exposition() -> None:
    assert _not_imported("fast", ["pydantic", "yaml", "ironlb.config.models", "prometheus_client.exposition"]) == []


def test_speaker_imports_no_webhook_server_lightkube_clients_nor_models() -> None:
    unused = ["ironlb.webhooks.server", "prometheus_client.exposition", "http.server", "lightkube.core.client",
              "lightkube.core.async_client", "lightkube.models.core_v1", "lightkube.resources"]  # fmt: skip
    assert _not_imported("speaker", unused) == []


def test_run_imports_no_exposition() -> None:
    assert _not_imported("run", ["prometheus_client.exposition", "http.server"]) == []


def test_lazy_packages_still_give_every_name() -> None:
    out = _run(
        COMMANDS["speaker"]
        + "import types\n"
        "import ironlb.config.build\n"
        "from ironlb.config import Config, Conversion, build, load_files, types as t\n"
        "assert isinstance(build, types.FunctionType) and t.__name__ == 'ironlb.config.types'\n"
        "from ironlb.webhooks import serve_webhooks, certs\n"
        "import lightkube\n"
        "from lightkube import Client, AsyncClient, ALL_NS, KubeConfig, ApiError\n"
        "from lightkube.core.internal_models import core_v1, meta_v1\n"
        "from lightkube.resources.core_v1 import Pod\n"
        "from prometheus_client import REGISTRY, generate_latest, start_http_server\n"
        "print(generate_latest(REGISTRY).decode())\n"
    )
    # the default collectors prometheus_client's own __init__ registers
    for name in ("python_gc_objects_collected_total", "python_info", "process_cpu_seconds_total"):
        assert name in out
