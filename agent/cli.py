"""``ank-agent``: parse the settings, set up logging, run the agent.

User errors are one line on stderr and a non-zero exit, never a traceback:
exit 2 for bad settings (command line, environment, config file, TLS files),
1 for an unusable run folder or a failure to start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from ankaios_agent.agent.config import AgentConfig, parse_args, prepare_io_folder
from ankaios_agent.agent.errors import AgentError, UsageError

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr, force=True)
    # gRPC's C core logs connection events on its own; our connection logs them once per change.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def _run(config: AgentConfig) -> int:
    # Imported here: the assembly pulls in podman-py and every runtime, which --help,
    # --version and argument errors must not need.
    from ankaios_agent.agent.app import run_agent  # noqa: PLC0415
    from ankaios_agent.agent.wiring import assemble  # noqa: PLC0415

    return asyncio.run(run_agent(config, assemble), debug=False)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_args(argv, os.environ)
    except UsageError as err:
        print(f"ank-agent: error: {err}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    for notice in config.notices:
        logger.warning("%s", notice)
    try:
        prepare_io_folder(config)
        return _run(config)
    except AgentError as err:
        print(f"ank-agent: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # A second Ctrl-C while shutting down: still no traceback.
        return 130
