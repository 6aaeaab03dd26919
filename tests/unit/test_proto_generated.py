"""The committed generated modules must equal a fresh generation from proto/ankaios.proto."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_committed_generated_code_matches_a_fresh_generation() -> None:
    """behaviour "Wire contract": a test fails when the committed files differ from a fresh generation."""
    pytest.importorskip(
        "grpc_tools.protoc", reason="grpcio-tools (dev extra) is not installed; cannot regenerate"
    )
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    gen_proto = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_proto)
    assert gen_proto.differences() == [], "run: python scripts/gen_proto.py"
