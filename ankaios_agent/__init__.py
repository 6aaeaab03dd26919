"""ank-agent, an Eclipse Ankaios node agent for Podman.

The repository keeps its units in top-level folders (``agent/``, ``proto/``,
``runtimes/``, ``control_interface/``); this package is the one import name they
are installed under, so that a generic name such as ``proto`` (owned by
``proto-plus``) is never claimed in site-packages. In the source tree the
subpackages are symbolic links to those folders; the wheel holds real copies.
See docs/architecture.md "Packaging".
"""
