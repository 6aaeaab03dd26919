"""Both server doubles answer the shared test API the same way, so a test can run on either."""

from __future__ import annotations

import hashlib

import pytest

from tests.support.doubles import DIALECTS, Dialect, apply_manifest, make_double, server_url, workload_names

MANIFEST = """
apiVersion: v0.1
workloads:
  db:
    agent: agent_A
    runtime: podman
    tags: [{key: owner, value: test}]
    runtimeConfig: "image: db"
  web:
    agent: agent_A
    runtime: podman
    dependencies: {db: ADD_COND_RUNNING}
    runtimeConfig: "image: web"
"""


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_shared_api_behaves_alike(dialect: Dialect) -> None:
    double = make_double(dialect, MANIFEST)
    await double.start()
    try:
        assert server_url(double) == f"http://127.0.0.1:{double.port}"
        assert workload_names(double) == {"db", "web"}
        assert [s.display for s in double.state_of("db", agent="agent_A")] == ["Pending(Initial)"]
        added = await apply_manifest(
            double, 'apiVersion: v0.1\nworkloads:\n  late: {agent: "", runtime: podman, runtimeConfig: x}\n'
        )
        assert added == [f"late.{hashlib.sha256(b'x').hexdigest()}."]
        assert [s.display for s in double.state_of("late")] == ["NotScheduled"]
        await double.delete_workload("late")
        await double.wait_until(lambda: not double.state_of("late"))
        port = double.port
        await double.restart()
        assert double.port == port
        assert {i.workload for i in double.states} == {"db", "web"}
        assert double.disconnects == {} and double.connected_agents == set()
    finally:
        await double.stop()
