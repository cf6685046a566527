"""The runs report's page is a Jinja2 template with autoescaping: ledger text is never markup."""

from __future__ import annotations

import re
from pathlib import Path

from compiler.ledger import Ledger
from compiler.runs.report import build_report

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "boom <script>alert('x')</script> & \"q\""


def test_ledger_text_is_escaped_in_every_place_it_appears(tmp_path: Path) -> None:
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        number = ledger.record_compile("h", "model<u>", "feat'x", [], {"model": {}})
        ledger.start(number)
        ledger.fail(number, HOSTILE)
        runs = ledger.list()
    page = build_report(runs, "val_rmse", title="t <i>", source="src&<x>").html
    assert "<script" not in page and "<u>" not in page and "<i>" not in page
    assert "boom &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;q&#34;" in page
    assert "<td class=l>model&lt;u&gt;</td><td class=l>feat&#39;x</td>" in page
    assert "<title>t &lt;i&gt;</title>" in page and "· src&amp;&lt;x&gt;</p>" in page
    # The stylesheet is template text, not a value: its quotes stay as written.
    assert "font-family:system-ui,-apple-system,'Segoe UI',sans-serif" in page


def test_the_template_ships_as_package_data() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    line = re.search(r"^\[tool\.setuptools\.package-data\]\ncompiler = \[(.*)\]$", text, re.M)
    assert line is not None
    patterns = re.findall(r'"([^"]+)"', line.group(1))
    templates = sorted((ROOT / "compiler" / "runs" / "templates").iterdir())
    assert templates, "no report template"
    assert all(any(t.match(f"compiler/{p}") for p in patterns) for t in templates)
