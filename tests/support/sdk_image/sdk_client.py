"""Runs inside the SDK test image: the official ankaios-sdk as an unmodified client.

Each step writes ``/data/<step>.json``; the test waits for them and, where the
client must wait for the test (the agent is restarted in between), creates
``/data/<name>`` for the client to go on.
"""

import json
import os
import sys
import time
import traceback

from ankaios_sdk import Ankaios, AnkaiosResponseError, Workload

DATA = "/data"
AGENT = os.environ["AGENT_NAME"]
with open(os.path.join(DATA, "new_workload_config"), encoding="utf-8") as config:
    NEW_CONFIG = config.read()


def report(step, **fields):
    path = os.path.join(DATA, step + ".json")
    with open(path + ".tmp", "w", encoding="utf-8") as out:
        json.dump(fields, out)
    os.rename(path + ".tmp", path)


def wait_for(name, timeout=300.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(os.path.join(DATA, name)):
        if time.monotonic() > deadline:
            raise TimeoutError(name)
        time.sleep(0.1)


def workload_names(state):
    return sorted(state.to_dict().get("desired_state", {}).get("workloads", {}))


def main():
    with Ankaios() as ank:
        run(ank)


def run(ank):
    report("connected")
    report("allowed", workloads=workload_names(ank.get_state(["desiredState.workloads"])))
    try:
        ank.get_state(["agents"])
        report("refused", error=None)
    except AnkaiosResponseError as err:
        report("refused", error=str(err))
    workload = (
        Workload.builder()
        .workload_name("sdk_added")
        .agent_name(AGENT)
        .runtime("podman")
        .restart_policy("NEVER")
        .runtime_config(NEW_CONFIG)
        .build()
    )
    success = ank.apply_workload(workload)
    report("applied", added=[str(name) for name in success.added_workloads])
    wait_for("agent-restarted")
    # The SDK reconnects by itself (new hello) once the new agent serves the FIFOs again.
    deadline = time.monotonic() + 120
    while True:
        try:
            names = workload_names(ank.get_state(["desiredState.workloads"]))
            break
        except Exception as err:  # not connected yet, or a timeout while the agent comes back
            if time.monotonic() > deadline:
                raise
            print(f"not yet reconnected: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            time.sleep(0.5)
    report("reconnected", workloads=names)


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        report("failed", error=traceback.format_exc())
        raise
