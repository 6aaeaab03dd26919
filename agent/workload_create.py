"""One create attempt of a workload instance, and what its outcome means for the loop.

An attempt makes (or finds again) the control interface, writes the instance's
files where the rules and the runtime want them, and asks the runtime for the
container. It returns what happened and moves nothing else: the workload loop
changes its phase, reports and schedules the next attempt from the outcome.

* ``Created``: the runtime created and started the container;
* ``Retryable``: the runtime failed (``RuntimeFailure``); another attempt may work;
* ``Abandoned``: no attempt can work as things are (bad runtimeConfig, bad
  file, unusable control interface, unsupported runtime, a bug in the agent);
  its state is the reason to report.

Reported sequences (the exact strings the server and ``ank`` look for):

* v0.3.1: ``Pending(Starting)/"Triggered at runtime."`` before every attempt,
  ``Pending(StartingFailed)/<error>`` after a failed one; the first retry is
  immediate, then one every ``create_retry_interval`` until ``create_retries``
  is exceeded, then ``Pending(StartingFailed)/"No more retries."``. A control
  interface that cannot be made fails the create with its reason.
* v1.0.1: ``Pending(Starting)/"Triggered at runtime."`` once, then before each
  attempt the workload's files are written below ``<run>/<wl>.<id>/files/``
  and mounted read-only; a failed attempt reports
  ``Pending(Starting)/"Retry <n>: <error>"`` and retry ``n`` follows after a
  random delay of up to ``min(500 * 2**(n-1), 300000)`` ms, without limit,
  until an update or delete supersedes it (the next create starts at 1 again);
  an abandoned create reports ``Pending(StartingFailed)/<reason>`` alone. A
  control interface that cannot be made (folder or FIFOs) does not stop the
  create: the workload starts without one and without the mount, and a
  warning says why.

Beyond the reference agent: a bad runtimeConfig, an unusable control interface
or an internal error of the agent is not retried (v0.3.1: ``<reason>`` then
``No more retries.``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ankaios_agent.agent.errors import RuntimeFailure, WorkloadConfigError
from ankaios_agent.agent.instance_folder import InstanceFolders
from ankaios_agent.agent.lifecycle_rules import LifecycleRules
from ankaios_agent.agent.model import ExecutionState, InstanceName, WorkloadSpec
from ankaios_agent.agent.ports import CreateRequest, Runtime
from ankaios_agent.agent.unsupported_runtime import UnsupportedRuntime
from ankaios_agent.agent.workload_control_dir import ControlDir
from ankaios_agent.agent.workload_file_writer import FileMount
from ankaios_agent.agent.workload_files import WorkloadFileError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Created:
    runtime: Runtime
    runtime_id: str


@dataclass(frozen=True)
class Retryable:
    reason: str


@dataclass(frozen=True)
class Abandoned:
    state: ExecutionState


Outcome = Created | Retryable | Abandoned


def internal_error_text(err: BaseException) -> str:
    """The StartingFailed / DeleteFailed text of a bug in the agent (never the workload's fault)."""
    return f"internal error of the agent ({type(err).__name__}: {err}); see the agent's log"


def runtime_for(runtimes: Mapping[str, Runtime], spec: WorkloadSpec) -> Runtime:
    """The workload's runtime, or the stand-in that reports it unsupported."""
    runtime = runtimes.get(spec.runtime)
    return runtime if runtime is not None else UnsupportedRuntime(spec.runtime)


def retry_state(rules: LifecycleRules, retry_number: int, reason: str) -> ExecutionState:
    """What a retryable failure reports: v1.0.1 numbers its retries, v0.3.1 gives the reason alone."""
    if rules.retry_forever:
        return ExecutionState.retrying(retry_number, reason)
    return ExecutionState.starting_failed(reason)


async def attempt_create(
    name: str,
    spec: WorkloadSpec,
    reuse_id: str | None,
    *,
    rules: LifecycleRules,
    runtime: Runtime,
    control_dir: ControlDir,
    folders: InstanceFolders,
    report: Callable[[InstanceName, ExecutionState], None],
) -> Outcome:
    """Create ``spec``'s container on ``runtime`` (or start ``reuse_id`` again).

    ``report`` receives the Starting state the v0.3.1 rules send before each attempt.
    Files written for a failed attempt are removed again.
    """
    wrote_files = False
    try:
        problem = await control_dir.prepare(spec)
        if problem is not None and rules.start_without_control_interface:
            log.warning(
                "workload %s: could not create its control interface (%s); starting it without one",
                name,
                problem,
            )
        elif problem is not None:
            log.error("workload %s: control interface unusable: %s", name, problem)
            return Abandoned(ExecutionState.starting_failed(problem))
        if not rules.retry_forever:
            report(spec.instance, ExecutionState.starting())
        mounts: tuple[FileMount, ...] = ()
        if folders.writes_files(rules, runtime):
            wrote_files = True
            try:
                mounts = await folders.write_files(spec)
            except WorkloadFileError as err:
                log.error("workload %s: %s", name, err.state_info)
                return Abandoned(ExecutionState.files_failed(err.reason))
        runtime_id = await runtime.create(CreateRequest(spec, control_dir.path, mounts, reuse_id))
    except WorkloadConfigError as err:
        log.error("workload %s: cannot be started as given: %s", name, err.reason)
        await folders.forget_files(spec.instance, wrote_files)
        return Abandoned(ExecutionState.starting_failed(err.reason))
    except RuntimeFailure as err:
        log.warning("workload %s: create failed: %s", name, err)
        await folders.forget_files(spec.instance, wrote_files)
        return Retryable(str(err) or type(err).__name__)
    except Exception as err:
        # Not a failure of the engine but a bug here: retrying it would only hide it.
        log.exception("workload %s: internal error of the agent while creating %s", name, spec.instance)
        await folders.forget_files(spec.instance, wrote_files)
        return Abandoned(ExecutionState.starting_failed(internal_error_text(err)))
    return Created(runtime, runtime_id)
