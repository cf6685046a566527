"""Helpers shared by the compiler tests: compose over override lists the Hydra way."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from compiler.core.compose import CONF_DIR, VERSION_BASE, register_configs

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS = ("hybrid_v1", "retrieval_v1", "ranking_v1")


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``conf/`` with overrides through Hydra's test API."""
    register_configs()
    GlobalHydra.instance().clear()  # compiler.core.compose keeps Hydra initialized between calls
    with initialize_config_dir(version_base=VERSION_BASE, config_dir=str(CONF_DIR)):
        return compose("config", overrides=list(overrides))


def run_cli(*args: str, cwd: Path = ROOT, env: dict | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "compiler", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, env=env,
    )
