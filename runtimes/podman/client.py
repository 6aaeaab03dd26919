"""Reaching Podman: socket discovery, a private service, clients.

Discovery order: ``--podman-socket``, then
``CONTAINER_HOST``, then the rootful ``/run/podman/podman.sock`` (as root) or
the rootless ``$XDG_RUNTIME_DIR/podman/podman.sock``. When none answers and
``podman`` is on PATH, a private ``podman system service --time=0`` is started
on ``<run folder>/podman.sock`` and stopped by ``PodmanConnection.close()``.

podman-py clients hold a requests session, which is not meant to be shared
across threads, so calls get one client per worker thread (``call_client``)
and the event stream gets its own client without a read timeout
(``stream_client``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests
from podman import PodmanClient
from podman.errors import PodmanError

from ankaios_agent.agent.errors import RuntimeUnavailable

logger = logging.getLogger(__name__)

RUNTIME_NAME = "podman"
ROOTFUL_SOCKET = "/run/podman/podman.sock"
PRIVATE_SOCKET_NAME = "podman.sock"


def candidate_urls(explicit: str | None, env: Mapping[str, str], uid: int) -> list[str]:
    """Socket URLs to try, in order (pure, so discovery is unit-testable)."""
    if explicit:
        return [_as_url(explicit)]
    if env.get("CONTAINER_HOST"):
        return [_as_url(env["CONTAINER_HOST"])]
    if uid == 0:
        return [f"unix://{ROOTFUL_SOCKET}"]
    runtime_dir = env.get("XDG_RUNTIME_DIR")
    return [f"unix://{runtime_dir}/podman/podman.sock"] if runtime_dir else []


def _as_url(text: str) -> str:
    """A bare path is a unix socket; ``unix://`` and ``tcp://`` URLs pass through."""
    return text if "://" in text else f"unix://{text}"


def ping(url: str, timeout: float = 3.0) -> bool:
    try:
        with PodmanClient(base_url=url, timeout=timeout) as client:
            return bool(client.ping())
    except (PodmanError, requests.RequestException, OSError, ValueError):
        return False


@dataclass
class PrivateService:
    """A ``podman system service`` this agent started and must stop."""

    process: subprocess.Popen[bytes]
    socket_path: Path

    @classmethod
    def start(cls, run_folder: Path, wait_s: float = 30.0) -> PrivateService:
        socket_path = run_folder / PRIVATE_SOCKET_NAME
        run_folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        log_path = run_folder / "podman-service.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                ["podman", "system", "service", "--time=0", f"unix://{socket_path}"],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,  # a Ctrl-C on the agent's terminal must not kill it first
            )
        service = cls(process, socket_path)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-300:].strip()
                raise RuntimeUnavailable(
                    RUNTIME_NAME, f"podman system service exited with {process.returncode}: {tail}"
                )
            if ping(service.url, timeout=1.0):
                return service
            time.sleep(0.05)
        service.stop()
        raise RuntimeUnavailable(RUNTIME_NAME, f"podman system service did not answer within {wait_s:.0f}s")

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


class PodmanConnection:
    """The Podman endpoint of this agent and the clients used to talk to it."""

    def __init__(
        self, url: str, service: PrivateService | None = None, call_timeout_s: float = 120.0
    ) -> None:
        self.url = url
        self.service = service
        self._call_timeout_s = call_timeout_s
        self._local = threading.local()
        self._clients: list[PodmanClient] = []
        self._clients_lock = threading.Lock()  # guards only the list of clients, never agent state

    @classmethod
    def discover(
        cls,
        explicit: str | None,
        run_folder: Path,
        env: Mapping[str, str] | None = None,
        uid: int | None = None,
    ) -> PodmanConnection:
        """Find a Podman socket that answers, or start a private service (blocking)."""
        env = os.environ if env is None else env
        candidates = candidate_urls(explicit, env, os.getuid() if uid is None else uid)
        for url in candidates:
            if ping(url):
                logger.info("using Podman at %s", url)
                return cls(url)
        if explicit:
            raise RuntimeUnavailable(RUNTIME_NAME, f"Podman socket {candidates[0]} does not answer")
        if shutil.which("podman") is None:
            tried = ", ".join(candidates) or "no socket candidates"
            raise RuntimeUnavailable(
                RUNTIME_NAME, f"no Podman socket answers ({tried}) and podman is not on PATH"
            )
        service = PrivateService.start(run_folder)
        logger.info(
            "no Podman socket answered (%s); started private podman system service (pid %d) at %s",
            ", ".join(candidates) or "none configured",
            service.process.pid,
            service.url,
        )
        return cls(service.url, service)

    def call_client(self) -> PodmanClient:
        """The calling thread's own client (requests sessions are per thread)."""
        client: PodmanClient | None = getattr(self._local, "client", None)
        if client is None:
            client = PodmanClient(base_url=self.url, timeout=self._call_timeout_s)
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def stream_client(self) -> PodmanClient:
        """A fresh client without read timeout, for the endless event stream."""
        return PodmanClient(base_url=self.url)

    def close(self) -> None:
        """Close clients and stop the private service if this agent started one (blocking)."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            with contextlib.suppress(Exception):
                client.close()  # type: ignore[no-untyped-call]
        if self.service is not None:
            logger.info("stopping private podman system service (pid %d)", self.service.process.pid)
            self.service.stop()
            self.service = None


def list_containers(connection: PodmanConnection, agent: str, *labels: str) -> list[dict[str, object]]:
    """All containers (any state) labelled ``agent=<agent>`` and ``labels`` (blocking)."""
    filters = json.dumps({"label": [f"agent={agent}", *labels]})
    response = connection.call_client().api.get(
        "/containers/json", params={"all": "true", "filters": filters}
    )
    response.raise_for_status()
    return list(response.json() or [])
