"""``run_agent`` with a recording manager, runnable as a process for the signal tests.

``python -m tests.integration.recording_agent --name X --server host:port`` runs the
real app (signals, executor, connection, ordered shutdown) with a manager that
only records; it prints one line per manager call to stdout, so a test can see
the order of ``on_connected``, ``handle`` and ``shutdown``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ankaios_agent.agent.app import AgentManager, ManagerFactory, run_agent
from ankaios_agent.agent.cli import setup_logging
from ankaios_agent.agent.config import AgentConfig, parse_args
from ankaios_agent.agent.lifecycle_rules import Dialect
from ankaios_agent.agent.model import FromServerMessageV1
from ankaios_agent.agent.ports import MessageSink


class RecordingManager:
    def __init__(self, out: list[str] | None = None, fail_run: bool = False) -> None:
        self.calls: list[str] = [] if out is None else out
        self.dialects: list[Dialect] = []
        self.fail_run = fail_run
        self.run_cancelled = False
        self.session_ends: list[bool] = []

    def _record(self, what: str) -> None:
        self.calls.append(what)
        print(what, flush=True)

    async def handle(self, msg: FromServerMessageV1) -> None:
        self._record(f"handle {type(msg).__name__}")

    async def on_connected(self, dialect: Dialect = Dialect.V0_3) -> None:
        self.dialects.append(dialect)
        self._record("on_connected")

    async def on_session_ended(self, clean: bool) -> None:
        self.session_ends.append(clean)

    async def run(self) -> None:
        self._record("run")
        if self.fail_run:
            raise RuntimeError("manager bug")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.run_cancelled = True
            raise

    async def shutdown(self) -> None:
        self._record("shutdown")


def recording_factory(manager: RecordingManager) -> ManagerFactory:
    @asynccontextmanager
    async def factory(config: AgentConfig, sink: MessageSink) -> AsyncIterator[AgentManager]:
        manager._record("factory enter")
        try:
            yield manager
        finally:
            manager._record("factory exit")

    return factory


def main() -> int:
    config = parse_args(sys.argv[1:], {})
    setup_logging(config.log_level)
    return asyncio.run(run_agent(config, recording_factory(RecordingManager())))


if __name__ == "__main__":
    sys.exit(main())
