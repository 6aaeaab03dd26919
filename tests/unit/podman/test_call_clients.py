"""Each pool thread has its own Podman client; a retiring thread's client is closed with it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ankaios_agent.agent.blocking import DaemonThreadPool
from ankaios_agent.runtimes.podman.client import PodmanConnection


def test_a_retiring_threads_client_is_closed_and_forgotten_and_close_skips_it(tmp_path: Path) -> None:
    connection = PodmanConnection(f"unix://{tmp_path}/podman.sock")
    pool = DaemonThreadPool(max_workers=2, idle_retire_s=0.02)
    together = threading.Barrier(2)
    closed: list[object] = []

    def own_client() -> object:
        client = connection.call_client()
        original = client.close

        def close() -> None:
            closed.append(client)
            original()

        client.close = close  # type: ignore[method-assign]
        together.wait(timeout=5)
        return client

    try:
        first, second = (f.result(timeout=5) for f in [pool.submit(own_client) for _ in range(2)])
        assert first is not second
        deadline = time.monotonic() + 5
        while not closed:
            assert time.monotonic() < deadline, "the retired thread's client was not closed"
            time.sleep(0.005)
        (gone,) = closed
        assert gone in (first, second)
        kept = second if gone is first else first
        connection.close()
        assert closed == [gone, kept]  # the retired one is not closed twice
    finally:
        pool.shutdown()
