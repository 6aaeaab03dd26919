"""The runtimes: Podman containers (``podman``) and Kubernetes manifests on Podman (``podman-kube``).

Both talk to Podman's REST API through podman-py, which sends its requests with
``requests``. Importing ``requests`` normally imports a character-set detector
(``charset_normalizer``, about 2.5 MiB resident, the largest single import of
the agent after gRPC) that requests only consults to guess the text encoding
of a response that names none. Podman answers in JSON, which is UTF-8, and
requests decodes as UTF-8 when no detector is installed; so the detector is
kept out of the agent's process. This is done here, before anything below
imports podman-py, and only if ``requests`` is not imported yet (a process
that already uses requests with its detector keeps it).
"""

import sys
import warnings


def _import_requests_without_charset_detection() -> None:
    if "requests" in sys.modules:
        return
    detectors = ("charset_normalizer", "chardet")
    # A None entry makes ``import`` raise ImportError, the case requests handles itself.
    blocked = [name for name in detectors if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        with warnings.catch_warnings():
            # requests warns once at import that it found no detector: expected here.
            warnings.filterwarnings("ignore", message="Unable to find acceptable character detection")
            import requests  # noqa: F401, PLC0415
    finally:
        # Later imports of a detector by other code work as usual; requests keeps its choice.
        for name in blocked:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


_import_requests_without_charset_detection()
