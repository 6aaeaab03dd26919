"""Reaching Podman: socket discovery, a private service, clients.

Discovery order: ``--podman-socket``, then ``CONTAINER_HOST``, then the
rootful ``/run/podman/podman.sock`` (as root) or the rootless
``$XDG_RUNTIME_DIR/podman/podman.sock``. When none answers and ``podman`` is on
PATH, the agent uses a private ``podman system service --time=0`` on
``<run folder>/podman.sock``: the one an earlier agent left there if it still
answers, else a new one. Either is stopped by ``PodmanConnection.close()``, and a
service the agent starts dies with the agent process even when it is killed.

podman-py clients hold a requests session, which is not meant to be shared
across threads, so calls get one client per worker thread (``call_client``)
and the event stream gets its own client without a read timeout
(``stream_client``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import queue
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import requests
from podman import PodmanClient
from podman.errors import PodmanError

from ankaios_agent.agent.blocking import at_thread_exit
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
    """A ``podman system service`` on this agent's private socket, which the agent must stop.

    It must never outlive the agent: the process gets a parent-death signal (SIGTERM), so
    even a SIGKILLed agent takes it along. Linux sends that signal when the *thread* that
    forked the child ends, so the child is started from a keeper thread that lives exactly
    as long as the service (it waits for it). Where the signal is not available, or the
    service survived anyway, the next start finds it answering on the same socket and
    adopts it (``adopt``) instead of starting another one.
    """

    socket_path: Path
    pid: int
    process: subprocess.Popen[bytes] | None = None  # None when adopted from an earlier agent

    @classmethod
    def start(cls, run_folder: Path, wait_s: float = 30.0) -> PrivateService:
        socket_path = run_folder / PRIVATE_SOCKET_NAME
        run_folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        log_path = run_folder / "podman-service.log"
        with log_path.open("ab") as log_file:
            process = _spawn_kept(
                ["podman", "system", "service", "--time=0", f"unix://{socket_path}"], log_file.fileno()
            )
        service = cls(socket_path, process.pid, process)
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

    @classmethod
    def adopt(cls, run_folder: Path) -> PrivateService | None:
        """The service an earlier agent left answering on the private socket, if there is one."""
        socket_path = run_folder / PRIVATE_SOCKET_NAME
        if not socket_path.exists() or not ping(f"unix://{socket_path}", timeout=2.0):
            return None
        pid = _listener_pid(socket_path)
        if pid is None or not _is_service_on(pid, socket_path):
            return None
        return cls(socket_path, pid)

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
        elif _is_service_on(self.pid, self.socket_path):
            _terminate_foreign(self.pid, self.socket_path)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


_PR_SET_PDEATHSIG = 1


def _parent_death_setter() -> Callable[[], None] | None:
    """A preexec function asking Linux to SIGTERM the child when its parent thread dies."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # noqa: PLC0415 (only a private Podman service needs it: ~0.4 MiB otherwise kept)

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not in the child
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the agent died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return set_parent_death_signal


def _spawn_kept(argv: list[str], log_fd: int) -> subprocess.Popen[bytes]:
    """Start ``argv`` from a thread that lives as long as the child, so the death signal fires
    only when the agent process dies (or the child exits), never when a worker thread retires."""
    started: queue.SimpleQueue[subprocess.Popen[bytes] | BaseException] = queue.SimpleQueue()

    def keep() -> None:
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                env=_local_podman_env(os.environ),
                stdout=log_fd,
                stderr=log_fd,
                start_new_session=True,  # a Ctrl-C on the agent's terminal must not kill it first
                preexec_fn=_parent_death_setter(),  # noqa: PLW1509 (only an async-signal-safe prctl)
            )
        except BaseException as exc:
            started.put(exc)
            return
        started.put(process)
        process.wait()

    threading.Thread(target=keep, name="podman-service-keeper", daemon=True).start()
    result = started.get()
    if isinstance(result, BaseException):
        raise RuntimeUnavailable(RUNTIME_NAME, f"cannot start podman system service: {result}") from result
    return result


def _local_podman_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the variables that would make the podman CLI a client of another service
    (with CONTAINER_HOST set, ``podman system service`` runs remote and refuses its socket)."""
    return {key: value for key, value in env.items() if key not in _REMOTE_VARIABLES}


_REMOTE_VARIABLES = frozenset({"CONTAINER_HOST", "CONTAINER_CONNECTION"})


def _listener_pid(socket_path: Path) -> int | None:
    """The pid of the process listening on ``socket_path`` (the kernel's peer credentials)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(socket_path))
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid, _uid, _gid = struct.unpack("3i", creds)
    return pid if pid > 0 else None


def _is_service_on(pid: int, socket_path: Path) -> bool:
    """Whether ``pid`` is a live ``podman system service`` serving ``socket_path``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    words = [arg.decode(errors="replace") for arg in argv]
    return state != "Z" and "service" in words and f"unix://{socket_path}" in words


def _terminate_foreign(pid: int, socket_path: Path) -> None:
    """SIGTERM an adopted service (not our child, so no wait()), SIGKILL if it lingers."""
    for sig, grace_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not _is_service_on(pid, socket_path):
                return
            time.sleep(0.05)


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
        tried = ", ".join(candidates) or "none configured"
        adopted = PrivateService.adopt(run_folder)
        if adopted is not None:
            logger.info(
                "no Podman socket answered (%s); reusing the private podman system service (pid %d) "
                "an earlier agent left at %s",
                tried,
                adopted.pid,
                adopted.url,
            )
            return cls(adopted.url, adopted)
        service = PrivateService.start(run_folder)
        logger.info(
            "no Podman socket answered (%s); started private podman system service (pid %d) at %s",
            tried,
            service.pid,
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
            at_thread_exit(functools.partial(self._release, client))
        return client

    def _release(self, client: PodmanClient) -> None:
        """A retiring worker's client: closed now, not when a garbage collection finds it."""
        with self._clients_lock:
            if client not in self._clients:
                return  # close() has it already
            self._clients.remove(client)
        client.close()  # type: ignore[no-untyped-call]

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
            logger.info("stopping private podman system service (pid %d)", self.service.pid)
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
