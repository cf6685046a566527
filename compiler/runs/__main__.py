"""``python -m compiler.runs``."""

import sys

from compiler.runs.cli import main

sys.exit(main())
