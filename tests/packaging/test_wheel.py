"""The built wheel claims one import name, ``ankaios_agent``, and coexists with proto-plus.

proto-plus (a dependency of every Google Cloud client library) owns the top-level
import name ``proto``; a wheel that installed our ``proto/`` folder under that name
would break one of the two. The wheel is built from this tree without network and
installed into a folder of its own; a fresh interpreter, started outside the source
tree so the folders here cannot shadow anything, must import both.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        cwd=out,
    )
    (built,) = out.glob("ankaios_agent-*.whl")
    return built


def test_wheel_installs_only_the_ankaios_agent_import_name(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        top = {name.split("/", 1)[0] for name in archive.namelist()}
        names = set(archive.namelist())
    assert {name for name in top if not name.endswith((".dist-info", ".data"))} == {"ankaios_agent"}
    # The symbolic links of the source tree become real files in the wheel.
    for module in (
        "agent/cli.py",
        "proto/ankaios_pb2.py",
        "proto/ankaios.proto",
        "proto/ankaios_pb2.pyi",
        "runtimes/podman/runtime.py",
        "control_interface/relay.py",
    ):
        assert f"ankaios_agent/{module}" in names


def test_wheel_and_proto_plus_import_side_by_side(wheel: Path, tmp_path: Path) -> None:
    pytest.importorskip("proto", reason="proto-plus (test extra) is not installed")
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    probe = (
        "import json, proto, ankaios_agent.proto.ankaios_pb2 as pb, ankaios_agent.agent.cli as cli;"
        "print(json.dumps({'proto': proto.__file__, 'message': hasattr(proto, 'Message'),"
        " 'pb': pb.__file__, 'cli': cli.__file__}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    found = json.loads(done.stdout)
    assert found["message"], f"`import proto` did not give proto-plus: {found['proto']}"
    assert not found["proto"].startswith(str(target))
    assert found["pb"].startswith(str(target)) and found["cli"].startswith(str(target))
