"""Podman socket discovery order."""

from __future__ import annotations

from ankaios_agent.runtimes.podman.client import candidate_urls


def test_explicit_socket_wins_over_everything() -> None:
    env = {"CONTAINER_HOST": "unix:///env.sock", "XDG_RUNTIME_DIR": "/run/user/1000"}
    assert candidate_urls("/my/podman.sock", env, 0) == ["unix:///my/podman.sock"]
    assert candidate_urls("tcp://host:8080", env, 0) == ["tcp://host:8080"]


def test_container_host_comes_next() -> None:
    assert candidate_urls(None, {"CONTAINER_HOST": "unix:///env.sock"}, 1000) == ["unix:///env.sock"]


def test_root_uses_rootful_socket() -> None:
    assert candidate_urls(None, {"XDG_RUNTIME_DIR": "/run/user/0"}, 0) == ["unix:///run/podman/podman.sock"]


def test_rootless_uses_xdg_runtime_dir_socket() -> None:
    env = {"XDG_RUNTIME_DIR": "/run/user/1000"}
    assert candidate_urls(None, env, 1000) == ["unix:///run/user/1000/podman/podman.sock"]


def test_rootless_without_runtime_dir_has_no_candidate() -> None:
    assert candidate_urls(None, {}, 1000) == []
