"""``python -m agent`` is the same as ``ank-agent``."""

import sys

from agent.cli import main

sys.exit(main())
