"""Looking at the run ledger: ``python -m compiler.runs list|show|compare|report``.

See ``compiler.runs.cli`` for the commands and ``compiler.runs.report`` for the HTML report.
"""

from compiler.runs.cli import main

__all__ = ["main"]
