"""The running process: event-loop setup, signals, and supervision of the top-level tasks.

``run_agent`` owns three long-lived tasks and one stop event:

* the server connection (``agent.connection``), which feeds the manager and
  tells it how each session ended;
* the manager's ``run`` (runtime event dispatch);
* the load reporter (``agent.load_reporter``): the node's CPU and free memory
  into the outbox every 2 s, connected or not (the outbox keeps only the
  latest; a v0.3.1 session drops them, that dialect has no such message);
* SIGTERM / SIGINT set the stop event.

The connection speaks the dialects the settings allow (``--protocol``; with
``auto`` it probes per connection) and tells the manager which one each new
session speaks.

Shutdown is one ordered, logged sequence: ``manager.shutdown()`` (stops loops
and relays, deletes nothing) bounded by ``shutdown_timeout``, then the stream
is cancelled -- the server (of either version) sees a stream error and marks
our workloads AgentDisconnected; no Goodbye is sent -- then the manager task.
Workloads keep running, and engine calls still in flight are not waited for
(their threads are daemons), so the process ends within two seconds of SIGTERM.
Exit code 0 after a signal; 1 when a top-level task died on its own (a bug: it is logged with its traceback).

The manager is built by a *factory* (an async context manager), so this module
never imports the lifecycle layer or the runtimes: ``agent.wiring.assemble``
is the production factory, tests pass their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from ankaios_agent.agent import dialects
from ankaios_agent.agent.config import AgentConfig
from ankaios_agent.agent.connection import ConnectionTimings, ServerConnection
from ankaios_agent.agent.lifecycle_rules import Dialect
from ankaios_agent.agent.load_reporter import LoadReporter
from ankaios_agent.agent.load_status import REPORT_PERIOD_SECONDS
from ankaios_agent.agent.model import FromServerMessageV1
from ankaios_agent.agent.outbox import Outbox
from ankaios_agent.agent.ports import MessageSink

logger = logging.getLogger(__name__)


class AgentManager(Protocol):
    """What the process needs from the manager (``agent.manager.Manager``)."""

    async def handle(self, msg: FromServerMessageV1) -> None: ...

    async def on_connected(self, dialect: Dialect) -> None: ...

    async def on_session_ended(self, clean: bool) -> None: ...

    async def run(self) -> None: ...

    async def shutdown(self) -> None: ...


ManagerFactory = Callable[[AgentConfig, MessageSink], AbstractAsyncContextManager[AgentManager]]


@dataclass(frozen=True)
class AppTimings:
    shutdown_timeout: float = 1.0  # manager.shutdown(); the whole exit stays well under 2 s
    connection: ConnectionTimings = field(default_factory=ConnectionTimings)
    load_report_interval: float = REPORT_PERIOD_SECONDS


async def run_agent(
    config: AgentConfig,
    manager_factory: ManagerFactory,
    *,
    timings: AppTimings | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); return the process exit code."""
    timings = timings or AppTimings()
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    signals = _install_signal_handlers(loop, stop)
    outbox = Outbox()
    try:
        async with manager_factory(config, outbox) as manager:
            return await _supervise(config, manager, outbox, stop, timings)
    finally:
        # Threads parked in blocking calls are not waited for: agent.blocking runs them as daemons.
        for sig in signals:
            loop.remove_signal_handler(sig)


async def _supervise(
    config: AgentConfig, manager: AgentManager, outbox: Outbox, stop: asyncio.Event, timings: AppTimings
) -> int:
    connection = ServerConnection(
        config.server_address,
        config.name,
        outbox,
        manager.handle,
        manager.on_connected,
        timings.connection,
        tls=config.tls,
        dialects=dialects.for_choices(config.dialects),
        tags=dict(config.tags),
        on_session_ended=manager.on_session_ended,
    )
    reporter = LoadReporter(config.name, outbox.send, interval=timings.load_report_interval)
    logger.info(
        "agent %r starting; server %s (%s, protocol %s), run folder %s",
        config.name,
        config.server_url,
        "mutual TLS" if config.tls is not None else "plain HTTP/2",
        config.protocol.value,
        config.io_folder,
    )
    conn_task = asyncio.create_task(connection.run(), name="connection")
    manager_task = asyncio.create_task(manager.run(), name="manager")
    load_task = asyncio.create_task(reporter.run(), name="load-reporter")
    stop_task = asyncio.create_task(stop.wait(), name="stop-signal")
    await asyncio.wait({conn_task, manager_task, load_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    exit_code = 0 if stop_task.done() else 1
    load_task.cancel()
    for task in (conn_task, manager_task, load_task):
        if task.done() and not task.cancelled() and task.exception() is not None:
            logger.error("%s stopped unexpectedly", task.get_name(), exc_info=task.exception())
    stop_task.cancel()

    logger.info("shutting down: stopping workload loops and control interfaces (workloads keep running)")
    try:
        async with asyncio.timeout(timings.shutdown_timeout):
            await manager.shutdown()
    except TimeoutError:
        logger.warning("the manager did not finish shutting down within %.1f s", timings.shutdown_timeout)
    except Exception:
        logger.exception("the manager's shutdown failed")
    logger.info("shutting down: closing the server stream (the server marks our workloads AgentDisconnected)")
    for task in (conn_task, manager_task):
        task.cancel()
    for task in (conn_task, manager_task, load_task):
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    logger.info("agent %r stopped", config.name)
    return exit_code


def _install_signal_handlers(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> list[signal.Signals]:
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):

        def on_signal(sig: signal.Signals = sig) -> None:
            if stop.is_set():
                logger.info("%s received again; already shutting down", sig.name)
            else:
                logger.info("%s received", sig.name)
            stop.set()

        try:
            loop.add_signal_handler(sig, on_signal)
        except (NotImplementedError, RuntimeError, ValueError):
            # Not the main thread (e.g. embedded in tests): the caller stops us through `stop`.
            continue
        installed.append(sig)
    return installed
