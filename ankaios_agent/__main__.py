"""``python -m ankaios_agent`` is the same as ``ank-agent``."""

import sys

from ankaios_agent.agent.cli import main

sys.exit(main())
