"""A private, real Podman for the test session.

What it provides (session fixture ``podman_env``):

* a containers.conf with the machine's required settings (runtime ``runc``,
  lowered default ulimits), exported as ``CONTAINERS_CONF`` for the whole
  session, so the CLI, the service and anything the tests start see it;
* the image ``localhost/ank-busybox:latest`` built from ``/bin/busybox``
  (only when missing; a file lock makes concurrent sessions safe);
* a private ``podman system service --time=0`` on a socket in a temp dir,
  ready when it answers ``/_ping``; stopped at session end (containers keep
  running under conmon, as with any Podman service);
* helpers to list / remove containers by label, so tests clean up only what
  they created.

Tests marked ``podman`` are skipped with a clear reason when Podman is
missing or its service cannot be started. Nothing here assumes root: under
rootless Podman the user's own storage and ``XDG_RUNTIME_DIR`` are used.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ankaios_agent.agent.errors import RuntimeUnavailable
from ankaios_agent.runtimes.podman.client import PRIVATE_SOCKET_NAME, PrivateService, ping

IMAGE = "localhost/ank-busybox:latest"
CONTAINERS_CONF_TEXT = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
"""
SERVICE_START_TIMEOUT_S = 30.0
_BUSYBOX = Path("/bin/busybox")


class PodmanUnavailable(Exception):
    """Podman cannot be used in this session; the message says why."""


@dataclass
class PodmanEnv:
    """A running private Podman service and helpers around it."""

    socket_path: Path
    containers_conf: Path
    image: str = IMAGE
    _service: PrivateService | None = field(default=None, repr=False)

    @property
    def socket_url(self) -> str:
        return f"unix://{self.socket_path}"

    def podman(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the podman CLI (same storage as the service) and return its result."""
        return subprocess.run(["podman", *args], capture_output=True, text=True, check=check, timeout=timeout)

    def containers(self, label: str) -> list[dict[str, object]]:
        """All containers (any state) carrying ``label`` (``key=value`` or ``key``)."""
        out = self.podman("ps", "-a", "--filter", f"label={label}", "--format", "json").stdout
        return list(json.loads(out or "[]"))

    def container_ids(self, label: str) -> list[str]:
        return [str(c["Id"]) for c in self.containers(label)]

    def remove_by_label(self, label: str) -> None:
        """Force-remove every container carrying ``label``; never touches others."""
        ids = self.container_ids(label)
        if ids:
            self.podman("rm", "--force", "--time", "0", *ids, check=False)

    def inspect(self, name_or_id: str) -> dict[str, object]:
        out = self.podman("container", "inspect", name_or_id).stdout
        data = json.loads(out)
        return dict(data[0])

    def ping(self) -> bool:
        return ping(self.socket_url, timeout=2.0)

    @property
    def service_pid(self) -> int:
        """The pid of the running service (benchmarks read its CPU time)."""
        if self._service is None:
            raise PodmanUnavailable("the private podman service is not running")
        return self._service.pid

    def stop_service(self) -> None:
        """Stop the private service (tests of reconnect behaviour use this too)."""
        service, self._service = self._service, None
        if service is not None:
            service.stop()

    def start_service(self) -> None:
        """(Re)start the private service on the same socket and wait until it answers."""
        if self._service is None:
            self._service = start_service(self.socket_path.parent)


def start_service(folder: Path) -> PrivateService:
    """The agent's own private ``podman system service`` on ``folder/podman.sock``."""
    try:
        return PrivateService.start(folder, wait_s=SERVICE_START_TIMEOUT_S)
    except RuntimeUnavailable as exc:
        raise PodmanUnavailable(exc.reason) from exc


def write_containers_conf(folder: Path) -> Path:
    path = folder / "containers.conf"
    path.write_text(CONTAINERS_CONF_TEXT)
    return path


def ensure_image(image: str = IMAGE) -> None:
    """Build ``image`` from /bin/busybox unless it exists; safe for concurrent sessions."""
    if _image_exists(image):
        return
    if not _BUSYBOX.is_file():
        raise PodmanUnavailable(f"{_BUSYBOX} is missing (install busybox-static) to build {image}")
    lock_path = Path(tempfile.gettempdir()) / f"ank-busybox-build-{os.getuid()}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building it right now
        if _image_exists(image):
            return
        with tempfile.TemporaryDirectory(prefix="ank-rootfs-") as tmp:
            rootfs = Path(tmp)
            _make_rootfs(rootfs)
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            result = subprocess.run(
                ["podman", "import", "--change", "CMD=/bin/sh", "-", image],
                stdin=tar.stdout,
                check=False,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait()
            if result.returncode != 0:
                raise PodmanUnavailable(f"cannot build {image}: {result.stderr.strip()}")


def _image_exists(image: str) -> bool:
    cmd = ["podman", "image", "exists", image]
    result = subprocess.run(cmd, check=False, capture_output=True, timeout=60)
    return result.returncode == 0


def _make_rootfs(rootfs: Path) -> None:
    # The temp dir is 0700; as the image's "/" that would lock out workloads running as
    # another user (--user), which rootless Podman enforces.
    rootfs.chmod(0o755)
    for folder in ("bin", "etc", "tmp", "proc", "sys", "dev", "run", "root", "var"):
        (rootfs / folder).mkdir()
    (rootfs / "tmp").chmod(0o1777)
    shutil.copy2(_BUSYBOX, rootfs / "bin" / "busybox")
    applets = subprocess.run(
        [str(_BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox" and "/" not in applet:
            (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")


@contextlib.contextmanager
def podman_environment() -> Iterator[PodmanEnv]:
    """Set up everything above; raise PodmanUnavailable when Podman cannot be used."""
    if shutil.which("podman") is None:
        raise PodmanUnavailable("podman is not installed (not on PATH)")
    if os.getuid() != 0 and not os.environ.get("XDG_RUNTIME_DIR"):
        raise PodmanUnavailable("rootless podman needs XDG_RUNTIME_DIR to be set")
    tmp = Path(tempfile.mkdtemp(prefix="ankp-"))  # short: unix socket paths are limited to 108 bytes
    old_conf = os.environ.get("CONTAINERS_CONF")
    os.environ["CONTAINERS_CONF"] = str(write_containers_conf(tmp))
    env = PodmanEnv(socket_path=tmp / PRIVATE_SOCKET_NAME, containers_conf=tmp / "containers.conf")
    try:
        ensure_image()
        env.start_service()
        yield env
    finally:
        env.stop_service()
        if old_conf is None:
            os.environ.pop("CONTAINERS_CONF", None)
        else:
            os.environ["CONTAINERS_CONF"] = old_conf
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def podman_env() -> Iterator[PodmanEnv]:
    """The session's private Podman; skips (cached for the session) when unavailable."""
    try:
        with podman_environment() as env:
            yield env
    except PodmanUnavailable as exc:
        pytest.skip(f"Podman unavailable: {exc}")


@pytest.fixture(autouse=True)
def _podman_marker_gate(request: pytest.FixtureRequest) -> None:
    """Tests marked ``podman`` get the session Podman (or are skipped with its reason)."""
    if request.node.get_closest_marker("podman") is not None:
        request.getfixturevalue("podman_env")
