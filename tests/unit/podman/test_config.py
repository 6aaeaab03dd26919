"""The runtimeConfig parsing of the podman runtime."""

from __future__ import annotations

import pytest

from ankaios_agent.agent.errors import WorkloadConfigError
from ankaios_agent.agent.model import InstanceName
from ankaios_agent.runtimes.podman.config import PodmanConfig, parse_runtime_config

INSTANCE = InstanceName("nginx", "agent_A", "1234")


def test_full_config_is_parsed_into_tuples() -> None:
    """Image plus the three string lists."""
    text = """
image: docker.io/nginx:latest
commandOptions: ["-p", "8081:80"]
commandArgs: [sh, -c, "echo hi"]
generalOptions: ["--log-level=debug"]
"""
    assert parse_runtime_config(INSTANCE, text) == PodmanConfig(
        image="docker.io/nginx:latest",
        command_options=("-p", "8081:80"),
        command_args=("sh", "-c", "echo hi"),
        general_options=("--log-level=debug",),
    )


def test_optional_lists_default_to_empty_and_unknown_keys_are_ignored() -> None:
    """Lists default to []; unknown keys are ignored."""
    assert parse_runtime_config(INSTANCE, "image: alpine\nfoo: bar\n") == PodmanConfig(image="alpine")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "must be a YAML mapping, got a list"),
        ("", "must be a YAML mapping, got empty"),
        ("just a string", "must be a YAML mapping, got a str"),
        ("commandArgs: [a]\n", "missing the required key 'image'"),
        ("image: 42\n", "'image' must be a non-empty string"),
        ("image: ''\n", "'image' must be a non-empty string"),
        ("image: a\ncommandOptions: -p\n", "'commandOptions' must be a list of strings, got str"),
        ("image: a\ncommandArgs: [1]\n", "'commandArgs' item 0 must be a string"),
        ("image: a\ngeneralOptions: {a: b}\n", "'generalOptions' must be a list of strings, got dict"),
    ],
)
def test_bad_runtime_config_gives_error_naming_the_problem(text: str, message: str) -> None:
    """Parse errors become create errors whose text names the problem."""
    with pytest.raises(WorkloadConfigError) as info:
        parse_runtime_config(INSTANCE, text)
    assert message in info.value.reason
    assert info.value.instance == INSTANCE
