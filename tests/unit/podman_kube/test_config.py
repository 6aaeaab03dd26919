"""Podman-kube runtimeConfig parsing and playOptions translation."""

from __future__ import annotations

import json

import pytest
import yaml

from ankaios_agent.agent.errors import WorkloadConfigError
from ankaios_agent.agent.model import InstanceName
from ankaios_agent.runtimes.podman_kube.config import parse_kube_config, translate_play_options

INSTANCE = InstanceName(workload="web", agent="agent_A", id="abc")
MANIFEST = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers: []\n"


def config_text(**fields: object) -> str:
    return yaml.safe_dump({"manifest": MANIFEST, **fields})


def reason_of(text: str) -> str:
    with pytest.raises(WorkloadConfigError) as info:
        parse_kube_config(INSTANCE, text)
    assert info.value.instance == INSTANCE
    return info.value.reason


def test_minimal_config_has_empty_option_lists() -> None:
    """Only manifest is required; the option lists default to []."""
    config = parse_kube_config(INSTANCE, config_text())
    assert config.manifest == MANIFEST
    assert (config.general_options, config.play_options, config.down_options) == ((), (), ())
    assert dict(config.play.query) == {}
    assert config.play.replace is False


def test_unknown_keys_are_ignored() -> None:
    """Unknown keys are ignored."""
    assert parse_kube_config(INSTANCE, config_text(somethingElse=[1, 2])).manifest == MANIFEST


def test_null_option_list_counts_as_empty() -> None:
    """A key present with no value (YAML null) is the default."""
    assert parse_kube_config(INSTANCE, config_text(playOptions=None)).play_options == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("manifest: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping with a 'manifest' key, got list"),
        ("", "expected a mapping with a 'manifest' key, got nothing"),
        ("playOptions: []\n", "'manifest' is missing"),
        ("manifest: 42\n", "'manifest' must be a string (Kubernetes YAML), got int"),
        ("manifest: '   '\n", "'manifest' is empty"),
        ("manifest: 'kind: [x'\n", "'manifest' is not valid YAML"),
        ("manifest: 'just text'\n", "'manifest' document 1 is not a Kubernetes object (no 'kind')"),
        (yaml.safe_dump({"manifest": "---\n---\n"}), "'manifest' holds no Kubernetes document"),
    ],
)
def test_bad_config_is_refused_with_a_reason_naming_the_problem(text: str, expected: str) -> None:
    """A bad runtimeConfig is a create error naming the problem."""
    reason = reason_of(text)
    assert reason.startswith("invalid podman-kube runtimeConfig: ")
    assert expected in reason


@pytest.mark.parametrize("key", ["generalOptions", "playOptions", "downOptions"])
@pytest.mark.parametrize("value", ["--network host", [1], [["--a"]], {"a": "b"}])
def test_option_lists_must_be_lists_of_strings(key: str, value: object) -> None:
    """Wrong types are errors."""
    assert f"'{key}' must be a list of strings" in reason_of(config_text(**{key: value}))


def test_play_options_translate_to_rest_query_parameters() -> None:
    """PlayOptions become POST /libpod/play/kube parameters, in every CLI spelling."""
    play = translate_play_options(
        [
            "--network",
            "none",
            "--network=podman",
            "--log-driver=k8s-file",
            "--log-opt",
            "max-size=1mb",
            "--ip=10.88.0.5",
            "--mac-address",
            "92:d0:c6:0a:29:33",
            "--annotation",
            "a=1",
            "--annotation=b=x=y",
            "--no-hosts",
            "--start=false",
            "--tls-verify=false",
            "-q",
            "--quiet",
        ]
    )
    query = dict(play.query)
    assert query == {
        "network": ["none", "podman"],
        "logDriver": "k8s-file",
        "logOptions": ["max-size=1mb"],
        "staticIPs": ["10.88.0.5"],
        "staticMACs": ["92:d0:c6:0a:29:33"],
        "annotations": json.dumps({"a": "1", "b": "x=y"}, sort_keys=True),
        "noHosts": "true",
        "start": "false",
        "tlsVerify": "false",
    }
    assert play.replace is False


def test_replace_is_kept_for_the_runtime_not_sent_as_a_parameter() -> None:
    """--replace: Podman 4.3 has no REST parameter; the runtime tears down first."""
    play = translate_play_options(["--replace"])
    assert play.replace is True
    assert dict(play.query) == {}
    assert translate_play_options(["--replace=false"]).replace is False


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--userns", "auto"], "--userns is not supported (Podman 4.3's REST API ignores it)"),
        (["--authfile=/a"], "--authfile is not supported"),
        (["--creds", "u:p"], "--creds is not supported"),
        (["--configmap", "x.yml"], "--configmap is not supported"),
        (["--publish", "8080:80"], "--publish is not supported"),
        (["--frobnicate"], "unsupported option --frobnicate"),
        (["--network"], "playOptions: option --network needs a value"),
        (["--start=maybe"], "--start takes true or false, got 'maybe'"),
        (["-q=maybe"], "--quiet takes true or false, got 'maybe'"),
        (["-qx"], "unsupported option -x"),
        (["--annotation", "novalue"], "--annotation needs key=value"),
        (["host"], "unexpected argument 'host'"),
        (["-"], "unexpected argument '-'"),
    ],
)
def test_unsupported_or_malformed_play_options_are_refused(options: list[str], expected: str) -> None:
    """An option the REST service would silently drop is refused, naming it."""
    reason = reason_of(config_text(playOptions=options))
    assert f"playOptions: {expected}" in reason or expected in reason


def test_down_options_are_refused_because_kube_down_takes_none() -> None:
    """Podman 4.3's kube down has no options; the reference would fail at delete time, we at create."""
    reason = reason_of(config_text(downOptions=["--force"]))
    assert "downOptions: unsupported option --force" in reason


def test_cli_only_general_options_are_ignored_others_refused(caplog: pytest.LogCaptureFixture) -> None:
    """GeneralOptions: logging flags of the CLI are ignored with a warning naming the workload."""
    config = parse_kube_config(INSTANCE, config_text(generalOptions=["--log-level", "debug", "--syslog"]))
    assert config.general_options == ("--log-level", "debug", "--syslog")
    assert "web.abc.agent_A" in caplog.text
    assert "generalOptions --log-level" in caplog.text
    reason = reason_of(config_text(generalOptions=["--root", "/x"]))
    assert "generalOptions: unsupported option --root" in reason
