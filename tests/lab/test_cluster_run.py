"""``tests/support/cluster_run``: a benchmark's lab and work directory go, whatever happens inside."""

from __future__ import annotations

import secrets
import subprocess

import pytest

from tests.support.cluster_run import cluster_run
from tests.support.netns import netns_available

pytestmark = pytest.mark.netns


def namespaces(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{prefix}-")]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_error_inside_propagates_and_leaves_nothing(error: type[BaseException]) -> None:
    if why := netns_available():
        pytest.skip(why)
    prefix = f"tcr{secrets.token_hex(3)}"
    with pytest.raises(error), cluster_run(prefix) as run:
        run.lab.netns("node1")
        run.lab.popen(f"{prefix}-node1", ["sleep", "60"])
        (run.workdir / "state").write_text("x")
        assert namespaces(prefix) == [f"{prefix}-node1"]
        raise error
    assert namespaces(prefix) == []
    assert not run.workdir.exists() and run.lab.processes == []
