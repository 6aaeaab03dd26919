"""Kube bookkeeping volumes: names and base64-without-padding labels."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ankaios_agent.agent.model import InstanceName
from ankaios_agent.runtimes.podman_kube import bookkeeping

INSTANCE = InstanceName(workload="web", agent="agent_A", id="0123abcd")


def test_volume_names_follow_the_reference() -> None:
    """<wl>.<id>.<agent>.config and .pods."""
    assert bookkeeping.config_volume(INSTANCE) == "web.0123abcd.agent_A.config"
    assert bookkeeping.pods_volume(INSTANCE) == "web.0123abcd.agent_A.pods"


def test_config_volume_name_parses_back_only_for_this_agent() -> None:
    """Strip .config and parse; other agents' and unparsable names are skipped."""
    assert bookkeeping.instance_of_config_volume("web.0123abcd.agent_A.config", "agent_A") == INSTANCE
    assert bookkeeping.instance_of_config_volume("web.0123abcd.agent_B.config", "agent_A") is None
    assert bookkeeping.instance_of_config_volume("web.0123abcd.agent_A.pods", "agent_A") is None
    assert bookkeeping.instance_of_config_volume("we.b.0123abcd.agent_A.config", "agent_A") is None


@pytest.mark.parametrize(("text", "expected"), [("a", "YQ"), ("ab", "YWI"), ("abc", "YWJj"), ("", "")])
def test_encoding_is_standard_base64_without_padding(text: str, expected: str) -> None:
    """The data label holds base64 without padding."""
    assert bookkeeping.encode(text) == expected


def test_encoding_uses_the_standard_alphabet() -> None:
    """'+' and '/' as in Rust's STANDARD alphabet, not the URL-safe '-' and '_'."""
    assert bookkeeping.encode(">>>") == "Pj4+"
    assert bookkeeping.encode("???") == "Pz8/"


@given(st.text())
def test_decode_inverts_encode(text: str) -> None:
    encoded = bookkeeping.encode(text)
    assert "=" not in encoded
    assert bookkeeping.decode(encoded) == text


def test_decode_accepts_padded_input() -> None:
    assert bookkeeping.decode("YQ==") == "a"


@pytest.mark.parametrize("data", ["Y", "not base64!", "_-_-"])
def test_decode_refuses_garbage(data: str) -> None:
    with pytest.raises(bookkeeping.BookkeepingError):
        bookkeeping.decode(data)


def test_pod_list_is_compact_json_like_serde() -> None:
    """Data = b64 of the JSON array of pod ids, e.g. ["<podid>"]."""
    data = bookkeeping.encode_pods(["p1", "p2"])
    assert bookkeeping.decode(data) == '["p1","p2"]'
    assert bookkeeping.decode_pods(data) == ["p1", "p2"]
    assert bookkeeping.decode_pods(bookkeeping.encode_pods([])) == []


@pytest.mark.parametrize("json_text", ["{}", "[1]", "nope", '"p1"'])
def test_pod_list_must_be_a_json_list_of_strings(json_text: str) -> None:
    with pytest.raises(bookkeeping.BookkeepingError):
        bookkeeping.decode_pods(bookkeeping.encode(json_text))
