"""Test plugins, and the helpers that put them (and examples/recforge-dcn) in reach.

Each directory here is a tiny site: one package plus its ``*.dist-info`` (``METADATA`` and an
``entry_points.txt`` in the ``recforge`` group). Putting the directory on ``sys.path`` is all
importlib.metadata, and so recforge, needs to find the plugin; nothing is installed.

  raises_at_import  recforge-raises 0.1.0     raises at import
  future_hookspec   recforge-future 2.0.0     declares RECFORGE_HOOKSPEC_VERSION = 2
  misspelled_hook   recforge-typo 0.1.0       implements ``register_fragment``
  clashing_dcn      recforge-otherdcn 0.3.0   registers another ``tower/dcn``
  broken            recforge-broken 0.1.0     one fragment per thing the conformance kit catches
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent
ROOT = FIXTURES.parent.parent
EXAMPLE_PACKAGE = ROOT / "examples" / "recforge-dcn"
EXAMPLE_DISTRIBUTION = "recforge-dcn"


def _installed_here() -> bool:
    """recforge-dcn is installed, editable, from this checkout."""
    try:
        dist = metadata.distribution(EXAMPLE_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return False
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    return direct.get("url") == EXAMPLE_PACKAGE.as_uri() and \
        direct.get("dir_info", {}).get("editable", False)


def install_example_package() -> None:
    """``pip install --no-deps --no-build-isolation -e examples/recforge-dcn`` into this
    interpreter's environment, unless it is already installed from here; then make it
    importable in this process (an editable install's .pth is only read at start-up)."""
    if not _installed_here():
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
             "--no-build-isolation", "-e", str(EXAMPLE_PACKAGE)],
            capture_output=True, text=True, timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"installing {EXAMPLE_PACKAGE} failed:\n{done.stderr}")
    source = str(EXAMPLE_PACKAGE / "src")
    if source not in sys.path:
        sys.path.append(source)
    importlib.invalidate_caches()


def forget_fixture_modules() -> None:
    """Drop the fixture plugins' modules, so the next registry imports them afresh."""
    fixture_packages = {p.name for site in FIXTURES.iterdir() if site.is_dir()
                        for p in site.iterdir() if p.is_dir() and "." not in p.name}
    for name in list(sys.modules):
        if name.split(".")[0] in fixture_packages:
            del sys.modules[name]
