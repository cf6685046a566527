"""``python -m compiler.runs``: list, show, compare, report (on a tiny SQLite ledger)."""

from __future__ import annotations

import base64
import copy
import html as html_module
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from compiler.ledger import Ledger
from compiler.runs import main
from compiler.runs.diff import config_diff, flatten, parse_override, swept_parameters
from compiler.runs.report import build_report

REPO = Path(__file__).resolve().parents[1]

BASE = {
    "model": {
        "name": "hybrid_v1",
        "model_type": "multitask",
        "buyer_tower": {"type": "mlp", "layers": [128, 64, 32], "l2": 0.0001},
        "optimizer": "adam",
        "learning_rate": 0.001,
        "batch_size": 1024,
    },
    "features": {
        "name": "cherng_v3",
        "buyer": [
            {"name": "customer_id", "dtype": "string", "embedding": {"dim": 64}},
            {"name": "cust_value", "dtype": "float", "bucketize": {"buckets": 100}},
        ],
        "crosses": {"buyer": [{"features": ["customer_id", "cust_value"], "hash_buckets": 10}]},
    },
}

# (learning_rate, batch_size, recall_at_100, val_rmse) of the sweep's three completed points.
SWEEP = [(0.001, 512, 0.21, 0.97), (0.01, 1024, 0.30, 0.92), (0.1, 1024, 0.25, 0.95)]


def metrics(recall_at_100: float, val_rmse: float) -> dict:
    """A multitask training_metrics.json, shaped as the trainer contract says."""
    history = [
        {"epoch": e, "loss": 3500.0 - 80 * e, "val_rmse": val_rmse + 0.05 * (2 - e)} for e in (1, 2)
    ]
    return {
        "model_type": "multitask",
        "history": history,
        "final": {
            "loss": history[-1]["loss"],
            "val_rmse": val_rmse,
            "val_mae": val_rmse * 0.77,
            "test_rmse": val_rmse + 0.01,
            "test_mae": val_rmse * 0.78,
            "recall_at_5": recall_at_100 / 10,
            "recall_at_10": recall_at_100 / 5,
            "recall_at_50": recall_at_100 / 1.5,
            "recall_at_100": recall_at_100,
        },
        "candidates": {"unique_products": 1040, "transactions": 13252},
        "test_split": "found",
    }


@pytest.fixture
def ledger_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """#1-#3: a completed learning-rate x batch-size sweep (id 1); #4: a failed point of it;
    #5: a compiled-only experiment outside the sweep."""
    monkeypatch.setenv("COLUMNS", "250")  # rich would cut captured output to 80 columns
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(url) as ledger:
        sweep = ledger.next_sweep_id("lr x batch")
        for lr, batch, recall, rmse in SWEEP:
            config = copy.deepcopy(BASE)
            config["model"].update(learning_rate=lr, batch_size=batch)
            number = ledger.record_compile(
                f"hash-{lr}-{batch}",
                "hybrid_v1",
                "cherng_v3",
                [f"model.learning_rate={lr}", f"model.batch_size={batch}"],
                config,
                {"trainer_module": f"/runs/{lr}/trainer_module.py"},
                sweep_id=sweep,
            )
            ledger.start(number)
            ledger.complete(number, metrics(recall, rmse), {"serving_model": f"/runs/{lr}/model"})
        config = copy.deepcopy(BASE)
        config["model"]["learning_rate"] = 1.0
        failed = ledger.record_compile(
            "hash-diverged", "hybrid_v1", "cherng_v3", ["model.learning_rate=1.0"], config,
            sweep_id=sweep,
        )  # fmt: skip
        ledger.start(failed, kind="vertex")
        ledger.set_job(failed, "8961198986769727488")
        ledger.fail(failed, "InvalidArgumentError: Cannot batch tensors with different shapes")
        ledger.record_compile("hash-retrieval", "retrieval_v1", "cherng_v3", [], BASE)
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def row_numbers(output: str) -> list[int]:
    return [int(m) for m in re.findall(r"^\s+(\d+)\s+(?:completed|failed|compiled)", output, re.M)]


# ------------------------------------------------------------------------------ list
def test_list_shows_every_experiment(ledger_url: str, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "list", "--ledger", ledger_url)
    assert code == 0
    assert row_numbers(out) == [1, 2, 3, 4, 5]
    assert "recall_at_100" in out and "val_rmse" in out
    assert "failed" in out and "compiled" in out and "vertex" in out


def test_list_sorts_by_a_metric_best_first(ledger_url: str, capsys: pytest.CaptureFixture) -> None:
    _, out, _ = run(capsys, "list", "--ledger", ledger_url, "--sort", "recall_at_100")
    assert row_numbers(out) == [2, 3, 1, 4, 5]  # no metric: last
    _, out, _ = run(capsys, "list", "--ledger", ledger_url, "--sort", "val_rmse")
    assert row_numbers(out)[:3] == [2, 3, 1]  # lower RMSE is better
    _, out, _ = run(capsys, "list", "--ledger", ledger_url, "--sort", "recall@100", "--asc")
    assert row_numbers(out)[:3] == [1, 3, 2]
    _, out, _ = run(capsys, "list", "--ledger", ledger_url, "--sweep", "1", "--limit", "2")
    assert row_numbers(out) == [1, 2]


def test_list_unknown_column_suggests_and_lists_valid_ones(
    ledger_url: str, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run(capsys, "list", "--ledger", ledger_url, "--sort", "recal_at_100")
    assert code == 2 and out == ""
    assert "unknown column 'recal_at_100'. Did you mean 'recall_at_100'?" in err
    assert "Valid columns: number, created_at," in err and "test_mae" in err
    assert "Traceback" not in err


def test_list_without_a_ledger_says_so_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    missing = tmp_path / "nothing" / "ledger.db"
    code, out, _ = run(capsys, "list", "--ledger", str(missing))
    assert code == 0 and "nothing has been recorded yet" in out
    assert not missing.parent.exists()
    code, _, err = run(capsys, "show", "1", "--ledger", str(missing))
    assert code == 2 and "no ledger at" in err


# ------------------------------------------------------------------------------ show, compare
def test_show_prints_the_whole_record(ledger_url: str, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "show", "2", "--ledger", ledger_url)
    assert code == 0
    for expected in (
        "#2",
        "hash-0.01-1024",
        "model.learning_rate=0.01 model.batch_size=1024",
        "/runs/0.01/model",  # artifacts merged at completion
        "features.buyer[customer_id].embedding.dim",  # flattened config, named list items
        "unique_products",
        "recall_at_100",
    ):
        assert expected in out, expected
    assert re.search(r"^\s+2\s+3340\s+0\.92", out, re.M)  # history: epoch 2 row
    code, out, _ = run(capsys, "show", "4", "--ledger", ledger_url)
    assert "8961198986769727488" in out and "Cannot batch tensors" in out


def test_show_missing_number_is_a_clear_error(
    ledger_url: str, capsys: pytest.CaptureFixture
) -> None:
    code, out, err = run(capsys, "show", "99", "--ledger", ledger_url)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"error: experiment 99 not found in ledger {ledger_url} (it has 5 experiments, #1..#5)"
    ]


def test_compare_shows_config_differences_and_metric_deltas(
    ledger_url: str, capsys: pytest.CaptureFixture
) -> None:
    code, out, _ = run(capsys, "compare", "1", "2", "--ledger", ledger_url)
    assert code == 0
    assert "config differences (2)" in out
    assert re.search(r"model\.learning_rate\s+0\.001\s+0\.01", out)
    assert re.search(r"model\.batch_size\s+512\s+1024", out)
    assert "model.optimizer" not in out  # equal keys are not listed
    assert re.search(r"recall_at_100\s+0\.21\s+0\.3\s+\+0\.09 \(\+42\.9%\)\s+better", out)
    assert re.search(r"val_rmse\s+0\.97\s+0\.92\s+-0\.05 \(-5\.2%\)\s+better", out)
    code, out, _ = run(capsys, "compare", "1", "1", "--ledger", ledger_url)
    # Records without provenance: the configs match, but nothing more can be claimed.
    assert "The recorded configs are identical." in out
    assert "#1 and #1 predate(s) provenance recording" in out


def truthful_pair(ledger_url: str, **second: object) -> tuple[int, int]:
    """Two records with provenance, as ``python -m compiler`` writes them; ``second`` changes
    the second one (``data``/``run`` groups, ``data_hash``, ``source_digest`` ...)."""
    numbers = []
    with Ledger(ledger_url) as ledger:
        for changes in ({}, second):
            config = copy.deepcopy(BASE)
            config["model"]["epochs"] = 20
            config["data"] = {"source": "default", "split": {"seed": 42}}
            config["run"] = {"epochs": 2, "runs_root": "runs"}
            config["submit"] = None
            for group in ("data", "run"):
                config[group].update(changes.get(group, {}))  # type: ignore[attr-defined]
            number = ledger.record_compile(
                "same-code-hash", "hybrid_v1", "cherng_v3", [], config,
                compiler_version="0.1.0",
                source_digest=str(changes.get("source_digest", "a" * 64)),
                seeds={"model.seed": 42, "data.split.seed": 42},
                effective={"epochs": config["run"]["epochs"], "epochs_from": "run.epochs",
                           "batch_size": 1024, "batch_size_from": "model.batch_size"},
            )
            ledger.start(number, "local", host="h", pid=os.getpid())
            ledger.complete(number, metrics(0.2, 0.9),
                            data_hash=str(changes.get("data_hash", "d" * 64)))
            numbers.append(number)
    return numbers[0], numbers[1]


def test_compare_lists_data_run_and_provenance_differences(
    ledger_url: str, capsys: pytest.CaptureFixture
) -> None:
    a, b = truthful_pair(ledger_url, data={"source": "/data/other.csv"}, run={"epochs": 1},
                         data_hash="e" * 64)
    code, out, _ = run(capsys, "compare", str(a), str(b), "--ledger", ledger_url)
    assert code == 0
    assert re.search(r"run\.epochs\s+2\s+1", out)
    assert re.search(r"data\.source\s+default\s+/data/other\.csv", out)
    assert re.search(r"effective epochs\s+2\s+1", out)
    assert re.search(r"data hash\s+d{64}\s+e{64}", out)
    assert "identical" not in out


def test_compare_says_what_ran_differs_when_only_the_source_or_data_did(
    ledger_url: str, capsys: pytest.CaptureFixture
) -> None:
    a, b = truthful_pair(ledger_url, source_digest="b" * 64)
    code, out, _ = run(capsys, "compare", str(a), str(b), "--ledger", ledger_url)
    assert re.search(r"source digest\s+a{64}\s+b{64}", out)
    assert "The configs are identical, but what ran differs (above)." in out
    a, b = truthful_pair(ledger_url)
    code, out, _ = run(capsys, "compare", str(a), str(b), "--ledger", ledger_url)
    assert "Identical: config (model, features, data, run, submit), seeds, data hash" in out


def test_show_reports_provenance_and_the_epochs_that_trained(
    ledger_url: str, capsys: pytest.CaptureFixture
) -> None:
    a, _ = truthful_pair(ledger_url)
    code, out, _ = run(capsys, "show", str(a), "--ledger", ledger_url)
    assert code == 0
    assert re.search(r"^epochs\s+2 \(run\.epochs\)", out, re.M)
    assert re.search(r"^seeds\s+model\.seed=42 data\.split\.seed=42", out, re.M)
    assert re.search(r"^data hash\s+d{64}", out, re.M)
    assert re.search(r"^source digest\s+a{64}", out, re.M)
    assert re.search(r"^compiler\s+recforge 0\.1\.0", out, re.M)
    assert re.search(rf"^process\s+pid {os.getpid()} on h", out, re.M)
    # The config table shows what trained, and says the model config said otherwise.
    assert re.search(r"model\.epochs\s+2 \(from run\.epochs; model\.epochs says 20\)", out)
    assert re.search(r"run\.epochs\s+2", out) and re.search(r"data\.source\s+default", out)


def test_sweep_leaderboard_ranks_points_by_the_objective(
    ledger_url: str, capsys: pytest.CaptureFixture
) -> None:
    from rich.console import Console

    from compiler.runs.leaderboard import print_sweep_leaderboard

    console = Console(width=200, record=True)
    with Ledger(ledger_url) as ledger:
        print_sweep_leaderboard(ledger, 1, console)
    text = console.export_text()
    assert "sweep #1 · objective recall_at_100 (higher is better)" in text
    ranks = re.findall(r"^\s+(\d|—)\s+(\d)\s+(.+?)\s{2,}(completed|failed)\s+(\S+)", text, re.M)
    assert [(r[0], r[1], r[4]) for r in ranks] == [
        ("1", "2", "0.3"), ("2", "3", "0.25"), ("3", "1", "0.21"), ("—", "4", "—")]
    assert ranks[0][2] == "model.learning_rate=0.01 model.batch_size=1024"
    assert ranks[3][2] == "model.learning_rate=1.0"


def test_fail_command_releases_a_stuck_run(ledger_url: str, capsys: pytest.CaptureFixture) -> None:
    with Ledger(ledger_url) as ledger:
        number = ledger.record_compile("h-stuck", "m", "f", [], {})
        ledger.start(number, kind="vertex")
    code, _, _ = run(capsys, "fail", str(number), "--reason", "job lost", "--ledger", ledger_url)
    assert code == 0
    with Ledger(ledger_url) as ledger:
        assert ledger.get(number).status == "failed"
        assert ledger.find_active("h-stuck", "vertex") is None


# ------------------------------------------------------------------------------ report
@pytest.mark.slow
def test_report_is_one_self_contained_html_file(
    ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out_file = tmp_path / "out" / "report.html"
    code, out, _ = run(
        capsys, "report", "--sweep", "1", "--out", str(out_file), "--ledger", ledger_url
    )
    assert code == 0
    assert "swept: model.learning_rate, model.batch_size" in out
    html = out_file.read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    # 2 scatters (learning rate, batch size) + 1 Recall@K bars + 1 overlay + 3 per-run curves.
    assert len(images) == 7
    assert all(base64.b64decode(i).startswith(b"\x89PNG\r\n\x1a\n") for i in images)
    # Nothing is fetched from elsewhere: no external scripts, styles, fonts or images.
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:|//)", html)
    assert "<script" not in html and "<link" not in html
    assert "Cannot batch tensors" in html  # the failed point's error
    assert html.index("<td>#2</td>") < html.index("<td>#3</td>") < html.index("<td>#1</td>")


def test_report_rejects_an_unknown_metric_and_an_empty_sweep(
    ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = run(capsys, "report", "--metric", "recall_at_1000", "--ledger", ledger_url)
    assert code == 2 and "Did you mean 'recall_at_100'?" in err
    code, _, err = run(capsys, "report", "--sweep", "42", "--ledger", ledger_url)
    assert code == 2 and "no experiments in sweep 42" in err
    assert not (tmp_path / "report.html").exists()


def test_report_builds_with_runs_lacking_history_or_recall() -> None:
    with tempfile.TemporaryDirectory() as tmp, Ledger(Path(tmp) / "l.db") as ledger:
        number = ledger.record_compile("h", "ranking_v1", "cherng_v3", [], BASE)
        ledger.start(number)
        ledger.complete(number, {"final": {"loss": 1.0, "val_rmse": 0.9}})  # no history
        report = build_report(ledger.list(), "val_rmse")
    assert report.plots == {"scatter": 0, "recall": 0, "curves": 0}
    assert "No run reported Recall@K." in report.html
    assert "No swept parameters" in report.html


#: Appended to a copy of the report: after the page loads, one line of what Chromium drew for
#: each image (decoded size, distinct colours painted on a canvas) for --dump-dom to print.
RENDER_PROBE = """<script>
window.addEventListener("load", () => {
  const drawn = Array.from(document.images, (img) => {
    if (!img.complete || img.naturalWidth === 0) return {width: 0, height: 0, colours: 0};
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(img, 0, 0);
    const image = context.getImageData(0, 0, canvas.width, canvas.height);
    return {width: img.naturalWidth, height: img.naturalHeight,
            colours: new Set(new Uint32Array(image.data.buffer)).size};
  });
  const out = document.createElement("pre");
  out.id = "render-probe";
  out.textContent = JSON.stringify(drawn);
  document.body.appendChild(out);
});
</script>"""


def drawn_in_chromium(browser: str, page: Path, profile: Path) -> list[dict[str, int]]:
    """What headless Chromium drew for each ``<img>`` of ``page`` (a copy with the probe)."""
    probed = page.with_name(f"probed-{page.name}")
    probed.write_text(page.read_text().replace("</body>", RENDER_PROBE + "</body>"))
    done = subprocess.run(
        # The flags this machine's closed network needs (no background fetches), as root.
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"]
        + ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
        + ["--no-first-run", f"--user-data-dir={profile}", "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )
    found = re.search(r'<pre id="render-probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the probe did not run: {done.stdout[-500:]} {done.stderr[-500:]}"
    return json.loads(html_module.unescape(found.group(1)))


def colours_in(png: bytes) -> tuple[tuple[int, int], int]:
    from PIL import Image  # matplotlib's own dependency

    with Image.open(io.BytesIO(png)) as image:
        return image.size, len(image.convert("RGBA").getcolors(maxcolors=1 << 24) or [])


@pytest.mark.slow  # starts a browser, twice
@pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="needs headless chromium (.ci/run installs Debian's chromium; this must not skip there)",
)
def test_report_renders_in_headless_chromium(
    ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    report = tmp_path / "report.html"
    assert run(capsys, "report", "--out", str(report), "--ledger", ledger_url)[0] == 0
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser is not None
    html = report.read_text()
    pngs = [base64.b64decode(i)
            for i in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)]
    assert len(pngs) >= 5  # scatters, Recall@K, curves
    drawn = drawn_in_chromium(browser, report, tmp_path / "profile")
    # Every plot decoded in the browser at its own size, with every colour matplotlib drew.
    assert [((d["width"], d["height"]), d["colours"]) for d in drawn] == [
        colours_in(png) for png in pngs]
    assert all(d["colours"] > 20 for d in drawn)  # axes, text and lines, not a blank image

    # The check fails for a plot that does not render: one image's data cut short, one not PNG.
    damaged = html.replace(base64.b64encode(pngs[0]).decode(),
                           base64.b64encode(pngs[0][: len(pngs[0]) // 2]).decode())
    damaged = damaged.replace(base64.b64encode(pngs[1]).decode(), "aGVsbG8gd29ybGQ=")
    (tmp_path / "damaged.html").write_text(damaged)
    broken = drawn_in_chromium(browser, tmp_path / "damaged.html", tmp_path / "profile2")
    assert broken[1] == {"width": 0, "height": 0, "colours": 0}
    assert (broken[0]["width"], broken[0]["height"]) == colours_in(pngs[0])[0]
    assert broken[0]["colours"] < colours_in(pngs[0])[1]  # the lower half is missing
    assert broken[2:] == drawn[2:]


# ------------------------------------------------------------------------------ no TensorFlow
@pytest.mark.slow
def test_the_cli_never_imports_tensorflow(ledger_url: str, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from compiler.runs import main\n"
        f"assert main(['list', '--ledger', {ledger_url!r}]) == 0\n"
        f"assert main(['report', '--out', {str(tmp_path / 'r.html')!r}, "
        f"'--ledger', {ledger_url!r}]) == 0\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    as_module = subprocess.run(
        [sys.executable, "-m", "compiler.runs", "show", "99", "--ledger", ledger_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert as_module.returncode == 2
    assert "Traceback" not in as_module.stderr and "experiment 99 not found" in as_module.stderr


# ------------------------------------------------------------------------------ helpers
def test_flatten_keys_named_list_items_by_name() -> None:
    flat = flatten(BASE)
    assert flat["model.buyer_tower.layers"] == [128, 64, 32]  # scalar lists stay whole
    assert flat["features.buyer[cust_value].bucketize.buckets"] == 100
    assert flat["features.crosses.buyer[0].features"] == ["customer_id", "cust_value"]
    changed = copy.deepcopy(BASE)
    changed["features"]["buyer"].insert(0, {"name": "date", "dtype": "timestamp"})
    # Inserting a feature shows as one new feature, not as every later item changing.
    assert [key for key, _, _ in config_diff(BASE, changed)] == ["features.buyer[date].dtype"]


def test_parse_override_reads_hydra_syntax() -> None:
    assert parse_override("model.learning_rate=0.01") == ("model.learning_rate", 0.01)
    assert parse_override("+model.seed=7") == ("model.seed", 7)
    assert parse_override("++trainer.fast=true") == ("trainer.fast", True)
    assert parse_override("~model.l2") == ("model.l2", None)
    assert parse_override("model.loss='huber'") == ("model.loss", "huber")
    assert parse_override("--multirun") is None


def test_swept_parameters_use_resolved_values_and_group_names(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as ledger:
        ranking = copy.deepcopy(BASE)
        ranking["model"].update(name="ranking_v1", learning_rate=0.01)
        a = ledger.record_compile("a", "hybrid_v1", "f", [], BASE)  # all defaults
        b = ledger.record_compile(
            "b", "ranking_v1", "f", ["model=ranking_v1", "model.learning_rate=0.01"], ranking
        )
        swept = swept_parameters(ledger.list())
    assert swept == {
        "model": {a: "hybrid_v1", b: "ranking_v1"},
        "model.learning_rate": {a: 0.001, b: 0.01},  # a ran with the default
    }
