"""A workload image with Python and the official ``ankaios-sdk``, built offline.

The base is the Debian image ``.ci/build-base-image`` makes (python3 with venv);
the SDK and its dependencies come from a local wheelhouse that ``.ci/run``
downloads (``pip download ankaios-sdk==<version>`` for that image's Python).
The build itself runs with ``--network=none``. The image is tagged with a hash
of its inputs, so it is rebuilt only when the wheels or the client change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SDK_VERSION = "1.0.1"
BASE_IMAGE = os.environ.get("ANK_BASE_IMAGE", "localhost/ank-base:bookworm")
_REPO = Path(__file__).resolve().parents[3]
WHEELHOUSE = Path(os.environ.get("ANK_SDK_WHEELHOUSE", _REPO / ".ci" / "work" / "sdk-wheels"))
CLIENT = Path(__file__).with_name("sdk_client.py")
IMAGE_REPOSITORY = "localhost/ank-sdk-client"


def _image_exists(image: str) -> bool:
    return subprocess.run(["podman", "image", "exists", image], check=False).returncode == 0


def _sdk_wheel() -> Path | None:
    wheels = sorted(WHEELHOUSE.glob(f"ankaios_sdk-{SDK_VERSION}-*.whl")) if WHEELHOUSE.is_dir() else []
    return wheels[0] if wheels else None


def missing_reason() -> str | None:
    """Why the image cannot be built here, or None."""
    if shutil.which("podman") is None:
        return "podman is not installed"
    if _sdk_wheel() is None:
        return (
            f"no ankaios-sdk {SDK_VERSION} wheel in {WHEELHOUSE} (.ci/run downloads it; or run "
            f"`pip download ankaios-sdk=={SDK_VERSION} -d {WHEELHOUSE} --only-binary=:all: "
            "--python-version 3.11 --platform manylinux2014_x86_64`)"
        )
    if not _image_exists(BASE_IMAGE):
        return f"base image {BASE_IMAGE} is missing (build it with `bash .ci/build-base-image`)"
    return None


def _tag() -> str:
    digest = hashlib.sha256()
    digest.update(BASE_IMAGE.encode())
    digest.update(CLIENT.read_bytes())
    for wheel in sorted(WHEELHOUSE.glob("*.whl")):
        digest.update(wheel.name.encode())
        digest.update(wheel.read_bytes())
    return f"{IMAGE_REPOSITORY}:{digest.hexdigest()[:16]}"


CONTAINERFILE = f"""\
FROM {BASE_IMAGE}
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/sdk \\
 && /opt/sdk/bin/pip install --no-index --find-links /tmp/wheels ankaios-sdk=={SDK_VERSION} \\
 && rm -rf /tmp/wheels
COPY sdk_client.py /opt/sdk_client.py
CMD ["/opt/sdk/bin/python", "-u", "/opt/sdk_client.py"]
"""


def ensure_sdk_image() -> str:
    """Build the image unless it exists already; returns its name. Raises RuntimeError."""
    reason = missing_reason()
    if reason is not None:
        raise RuntimeError(reason)
    image = _tag()
    if _image_exists(image):
        return image
    with tempfile.TemporaryDirectory(prefix="ank-sdk-image-") as context:
        root = Path(context)
        shutil.copytree(WHEELHOUSE, root / "wheels")
        shutil.copy(CLIENT, root / "sdk_client.py")
        (root / "Containerfile").write_text(CONTAINERFILE)
        result = subprocess.run(
            ["podman", "build", "--network=none", "--pull=never", "-t", image, str(root)],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"building {image} failed:\n{result.stdout}\n{result.stderr}")
    return image
