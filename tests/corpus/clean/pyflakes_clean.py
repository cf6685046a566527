"""Names defined, imports used, nothing redefined."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

METRICS_FILE = "training_metrics.json"
__all__ = ["metrics_path"]


def metrics_path(run_dir: str, extra: Mapping[str, str] | None = None) -> str:
    name = (extra or {}).get("name", METRICS_FILE)
    return os.path.join(run_dir, name)
