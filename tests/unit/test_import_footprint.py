"""What the agent process imports: only what an idle agent uses, nothing it never needs.

Each case runs a fresh interpreter, because what a process has imported is
global and this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

import pytest

# What ``ank-agent`` imports before it parses its arguments and connects.
AGENT_ENTRY = "import ankaios_agent.agent.cli, ankaios_agent.agent.app, ankaios_agent.agent.wiring\n"


def run_fresh(code: str) -> dict[str, object]:
    """Run ``code`` in a new interpreter (warnings are errors); it prints one JSON object."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_agent_does_not_import_a_character_set_detector() -> None:
    result = run_fresh(
        AGENT_ENTRY + "import json, sys\n"
        "detectors = ('charset_normalizer', 'chardet')\n"
        "print(json.dumps({'loaded': sorted(m for m in sys.modules if m.split('.')[0] in detectors)}))\n"
    )
    assert result == {"loaded": []}


def test_requests_decodes_podman_json_as_utf8_without_a_detector() -> None:
    result = run_fresh(
        AGENT_ENTRY + "import json, requests\n"
        "r = requests.models.Response()\n"
        "r._content = json.dumps({'Name': 'caf\\u00e9'}, ensure_ascii=False).encode()\n"
        "r.headers['Content-Type'] = 'application/json'\n"
        "print(json.dumps({'text': r.text, 'json': r.json()}))\n"
    )
    assert result == {"text": '{"Name": "café"}', "json": {"Name": "café"}}


def test_other_code_can_still_import_the_detector_afterwards() -> None:
    result = run_fresh(
        AGENT_ENTRY + "import json, charset_normalizer\n"
        "best = charset_normalizer.from_bytes('caf\\u00e9'.encode()).best()\n"
        "print(json.dumps({'detected': best.encoding}))\n"
    )
    assert result == {"detected": "utf_8"}


@pytest.mark.parametrize("first", ["requests", "charset_normalizer"])
def test_a_process_that_imported_requests_or_the_detector_first_keeps_it(first: str) -> None:
    result = run_fresh(
        f"import {first}\n" + AGENT_ENTRY + "import json, requests.compat\n"
        "print(json.dumps({'detector': requests.compat.chardet is not None}))\n"
    )
    assert result == {"detector": True}


# Loaded when a session, a control interface, mutual TLS, a private Podman service or
# a log read first needs them.
ON_DEMAND = (
    "ctypes",
    "ankaios_agent.agent.conversion",
    "ankaios_agent.agent.dialect_v1.conversion",
    "ankaios_agent.agent.dialect_v1.control_codec",
    "ankaios_agent.agent.tls_bridge",
    "ankaios_agent.control_interface.authorizer",
    "ankaios_agent.control_interface.codec_v0_3_1",
    "ankaios_agent.control_interface.codec_v1",
    "ankaios_agent.proto.ankaios_pb2",
    "ankaios_agent.proto.ank_base_pb2",
    "ankaios_agent.proto.control_api_pb2",
    "ankaios_agent.proto.grpc_api_pb2",
    "ankaios_agent.runtimes.podman.logs",
)


def loaded_on_demand(code: str) -> list[str]:
    result = run_fresh(
        AGENT_ENTRY + code + "\nimport json, sys\n"
        f"print(json.dumps({{'loaded': sorted(m for m in {ON_DEMAND!r} if m in sys.modules)}}))\n"
    )
    loaded = result["loaded"]
    assert isinstance(loaded, list)
    return loaded


def test_the_agent_starts_without_any_dialect_loaded() -> None:
    assert loaded_on_demand("") == []


def test_a_v0_3_1_session_loads_only_its_own_dialect() -> None:
    code = "from ankaios_agent.agent import dialects\ndialects.V0_3.codec()\n"
    assert loaded_on_demand(code) == ["ankaios_agent.agent.conversion", "ankaios_agent.proto.ankaios_pb2"]


def test_the_v1_probe_loads_the_generated_modules_but_not_the_conversion() -> None:
    code = (
        "from ankaios_agent.agent import dialects\n"
        "from ankaios_agent.agent.model import AgentHello\n"
        "from ankaios_agent.agent.wire_format import serialized\n"
        "serialized(dialects.V1.codec().hello(AgentHello('node1')))\n"
    )
    assert loaded_on_demand(code) == [
        "ankaios_agent.proto.ank_base_pb2",
        "ankaios_agent.proto.grpc_api_pb2",
    ]
