"""compiler.runner: tf.Transform on Beam, fn_args, the run_fn runner and the job entry point.

The Transform and Trainer modules here are tiny ones the tests write themselves, so these tests
check the runners, not any emitted module. One Transform run (the slow part, ~10 s) is shared
by every test in the module.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]

RAW_SCHEMA = {"user": "string", "ts": "int", "amount": "float"}

TRANSFORM_MODULE = '''
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402


def preprocessing_fn(inputs):
    return {
        "user_id": tft.compute_and_apply_vocabulary(
            inputs["user"], num_oov_buckets=1, vocab_filename="user_vocab"
        ),
        "amount_norm": tft.scale_to_z_score(inputs["amount"]),
        "day": tf.math.floordiv(inputs["ts"], 86400),
        "amount_target": tf.math.log1p(inputs["amount"]),
    }
'''

# Uses only fn_args fields and tf.io.gfile, so it also runs on ram:// paths.
TRAINER_MODULE = '''
import json
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402


def _rows(patterns):
    files = [f for pattern in patterns for f in tf.io.gfile.glob(pattern)]
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return int(dataset.reduce(0, lambda n, _: n + 1))


def run_fn(fn_args):
    output = tft.TFTransformOutput(fn_args.transform_graph_path)
    assert fn_args.transform_graph_path == fn_args.transform_output
    metrics = {
        "train_rows": _rows(fn_args.train_files),
        "eval_rows": _rows(fn_args.eval_files),
        "user_vocab": output.vocabulary_size_by_name("user_vocab"),
        "custom_config": fn_args.custom_config,
        "train_steps": fn_args.train_steps,
        "eval_steps": fn_args.eval_steps,
    }
    module = tf.Module()
    module.weight = tf.Variable(2.0)
    tf.saved_model.save(module, fn_args.serving_model_dir)
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(fn_args.model_run_dir + "/training_metrics.json", "w") as f:
        f.write(json.dumps(metrics))
'''


def tiny_splits() -> dict[str, pd.DataFrame]:
    """300 rows; eval has a user train never saw (it must map to the OOV id)."""
    rng = np.random.default_rng(0)

    def frame(rows: int, users: list[str]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "user": rng.choice(users, rows),
                "ts": rng.integers(1_700_000_000, 1_730_000_000, rows).astype(np.int64),
                "amount": rng.lognormal(2.0, 0.5, rows).astype(np.float32),
            }
        )

    known = [f"u{i}" for i in range(12)]
    return {
        "train": frame(240, known),
        "eval": frame(30, [*known, "stranger"]),
        "test": frame(30, known),
    }


def _write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip())
    return path


def _read_split(tf, pattern: str, spec: dict) -> dict[str, np.ndarray]:
    files = tf.io.gfile.glob(pattern)
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(10_000)
    batch = next(iter(dataset.map(lambda x: tf.io.parse_example(x, spec))))
    return {name: value.numpy() for name, value in batch.items()}


# ---------------------------------------------------------------------------------------------
# Fast: no TensorFlow needed
# ---------------------------------------------------------------------------------------------
def test_importing_the_runners_does_not_import_tensorflow() -> None:
    code = (
        "import sys\n"
        "import compiler.runner, compiler.runner.transform, compiler.runner.fn_args\n"
        "import compiler.runner.trainer, compiler.runner.job\n"
        "heavy = [m for m in ('tensorflow', 'tensorflow_transform', 'apache_beam', 'tf_keras')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_run_transform_requires_a_train_split(tmp_path: Path) -> None:
    from compiler.runner.transform import run_transform

    with pytest.raises(ValueError, match="train"):
        run_transform({"eval": pd.DataFrame()}, RAW_SCHEMA, tmp_path / "m.py", str(tmp_path))


def test_modules_with_the_same_file_name_load_as_distinct_modules(tmp_path: Path) -> None:
    from compiler.runner._modules import load_module_from_path

    first = load_module_from_path(_write(tmp_path / "a" / "trainer_module.py", "VALUE = 1\n"))
    second = load_module_from_path(_write(tmp_path / "b" / "trainer_module.py", "VALUE = 2\n"))
    assert first.__name__ != second.__name__
    assert (first.VALUE, second.VALUE) == (1, 2)
    assert sys.modules[first.__name__] is first


def test_a_module_that_fails_to_import_is_not_left_registered(tmp_path: Path) -> None:
    from compiler.runner._modules import load_module_from_path

    before = set(sys.modules)
    with pytest.raises(ZeroDivisionError):
        load_module_from_path(_write(tmp_path / "broken.py", "1 / 0\n"))
    assert set(sys.modules) == before


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_job_rejects_a_bad_custom_config(text: str) -> None:
    from compiler.runner.job import main

    with pytest.raises(SystemExit):
        main(["--trainer-module", "m.py", "--transform-dir", "t", "--output-dir", "o",
              "--custom-config", text])


# ---------------------------------------------------------------------------------------------
# fn_args: directory layouts (TensorFlow's gfile, no Beam)
# ---------------------------------------------------------------------------------------------
def _fake_transform_root(root: Path, execution_id: str | None = None, splits=("train", "eval")):
    graph = root / "transform_graph"
    examples = root / "transformed_examples"
    if execution_id:
        graph, examples = graph / execution_id, examples / execution_id
    (graph / "transform_fn").mkdir(parents=True)
    for name in splits:
        (examples / f"Split-{name}").mkdir(parents=True)
        (examples / f"Split-{name}" / "part-00000.gz").write_bytes(b"")
    return graph, examples


@pytest.mark.slow
def test_fn_args_from_a_transform_root(tmp_path: Path) -> None:
    from compiler.runner.fn_args import fn_args_from_transform

    graph, examples = _fake_transform_root(tmp_path / "Transform_1")
    fn_args = fn_args_from_transform(
        str(tmp_path / "Transform_1") + "/", str(tmp_path / "run"), {"epochs": 2}, train_steps=7
    )
    assert fn_args.train_files == [f"{examples}/Split-train/*.gz"]
    assert fn_args.eval_files == [f"{examples}/Split-eval/*.gz"]
    assert fn_args.transform_output == fn_args.transform_graph_path == str(graph)
    assert fn_args.serving_model_dir == f"{tmp_path}/run/serving_model"
    assert fn_args.model_run_dir == f"{tmp_path}/run/model_run"
    assert fn_args.custom_config == {"epochs": 2}
    assert (fn_args.train_steps, fn_args.eval_steps) == (7, None)


@pytest.mark.slow
def test_fn_args_accepts_tfx_execution_id_directories(tmp_path: Path) -> None:
    from compiler.runner.fn_args import fn_args_from_transform

    graph, examples = _fake_transform_root(tmp_path / "Transform", execution_id="12")
    fn_args = fn_args_from_transform(str(tmp_path / "Transform"), str(tmp_path / "run"))
    assert fn_args.transform_output == str(graph)
    assert fn_args.train_files == [f"{examples}/Split-train/*.gz"]


@pytest.mark.slow
def test_fn_args_of_a_two_way_split_has_no_eval_files(tmp_path: Path) -> None:
    """No Split-eval (data.split with no eval part): no eval files, and the trainer records
    eval_split=absent. A Split-eval without files is still an error."""
    from compiler.runner.fn_args import fn_args_from_transform

    _fake_transform_root(tmp_path / "T", splits=("train", "test"))
    assert fn_args_from_transform(str(tmp_path / "T"), str(tmp_path / "run")).eval_files == []
    (tmp_path / "T" / "transformed_examples" / "Split-eval").mkdir()
    with pytest.raises(FileNotFoundError, match="eval"):
        fn_args_from_transform(str(tmp_path / "T"), str(tmp_path / "run"))


# ---------------------------------------------------------------------------------------------
# Slow: one real tf.Transform run shared by the rest
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def transformed(tmp_path_factory: pytest.TempPathFactory):
    from compiler.runner.transform import run_transform

    root = tmp_path_factory.mktemp("runner")
    splits = tiny_splits()
    module = _write(root / "transform_module.py", TRANSFORM_MODULE)
    artifacts = run_transform(splits, RAW_SCHEMA, module, str(root / "transform"),
                              record='{"settings": {}}\n')
    return artifacts, splits, root


@pytest.mark.slow
def test_run_transform_writes_the_tfx_layout(transformed) -> None:
    artifacts, splits, root = transformed
    transform = root / "transform"
    assert artifacts.root == str(transform)
    assert artifacts.transform_graph == str(transform / "transform_graph")
    assert (transform / "transform_graph" / "transform_fn" / "saved_model.pb").is_file()
    assert (transform / "transform_graph" / "transformed_metadata" / "schema.pbtxt").is_file()
    # The raw schema too: serving signatures parse raw tf.Examples with it.
    assert (transform / "transform_graph" / "metadata" / "schema.pbtxt").is_file()
    for name in ("train", "eval", "test"):
        files = sorted((transform / "transformed_examples" / f"Split-{name}").iterdir())
        assert [f.name for f in files] == ["transformed_examples-00000-of-00001.gz"]
        assert artifacts.file_pattern(name) == f"{transform}/transformed_examples/Split-{name}/*.gz"
    assert artifacts.rows == {name: len(frame) for name, frame in splits.items()}
    assert artifacts.wall_seconds > 0
    # The settings record (compiler.runner.transform_digest) beside transform_graph/.
    assert (transform / "recforge_transform.json").read_text() == '{"settings": {}}\n'


@pytest.mark.slow
def test_run_transform_analyzes_train_and_applies_it_to_every_split(transformed) -> None:
    from compiler.runner._tf import import_tf

    tf = import_tf()
    import tensorflow_transform as tft

    artifacts, splits, _ = transformed
    output = tft.TFTransformOutput(artifacts.transform_graph)
    spec = output.transformed_feature_spec()
    assert set(spec) == {"user_id", "amount_norm", "day", "amount_target"}
    assert set(output.raw_feature_spec()) == set(RAW_SCHEMA)
    vocab = [v.decode() for v in output.vocabulary_by_name("user_vocab")]
    assert sorted(vocab) == sorted(set(splits["train"]["user"]))

    train = _read_split(tf, artifacts.file_pattern("train"), spec)
    assert len(train["day"]) == len(splits["train"])
    # z-score statistics come from train: mean 0 and std 1 there.
    assert abs(train["amount_norm"].mean()) < 1e-4
    assert abs(train["amount_norm"].std() - 1) < 1e-2
    np.testing.assert_allclose(
        np.sort(train["amount_target"]), np.sort(np.log1p(splits["train"]["amount"])), rtol=1e-5
    )

    evaluation = _read_split(tf, artifacts.file_pattern("eval"), spec)
    frame = splits["eval"]
    np.testing.assert_array_equal(np.sort(evaluation["day"]), np.sort(frame["ts"] // 86400))
    # A user train never saw gets the OOV id (= vocabulary size); everyone else a real id.
    strangers = int((frame["user"] == "stranger").sum())
    assert strangers > 0
    assert int((evaluation["user_id"] == len(vocab)).sum()) == strangers
    assert int((evaluation["user_id"] < len(vocab)).sum()) == len(frame) - strangers


@pytest.mark.slow
def test_run_trainer_passes_fn_args_and_returns_the_metrics(transformed, tmp_path: Path) -> None:
    from compiler.runner.fn_args import fn_args_from_transform
    from compiler.runner.trainer import run_trainer

    artifacts, splits, _ = transformed
    module = _write(tmp_path / "trainer_module.py", TRAINER_MODULE)
    fn_args = fn_args_from_transform(artifacts.root, str(tmp_path / "run"), {"epochs": 1})
    metrics = run_trainer(module, fn_args)
    assert metrics == {
        "train_rows": len(splits["train"]),
        "eval_rows": len(splits["eval"]),
        "user_vocab": 12,
        "custom_config": {"epochs": 1},
        "train_steps": None,
        "eval_steps": None,
    }
    assert (tmp_path / "run" / "serving_model" / "saved_model.pb").is_file()


@pytest.mark.slow
def test_run_trainer_propagates_run_fn_failures(transformed, tmp_path: Path) -> None:
    from compiler.runner.fn_args import fn_args_from_transform
    from compiler.runner.trainer import run_trainer

    artifacts, _, _ = transformed
    fn_args = fn_args_from_transform(artifacts.root, str(tmp_path / "run"))
    failing = _write(tmp_path / "failing.py", "def run_fn(fn_args):\n    raise KeyError('x')\n")
    with pytest.raises(KeyError):
        run_trainer(failing, fn_args)
    silent = _write(tmp_path / "silent.py", "def run_fn(fn_args):\n    pass\n")
    with pytest.raises(FileNotFoundError, match="training_metrics.json"):
        run_trainer(silent, fn_args)
    with pytest.raises(AttributeError, match="run_fn"):
        run_trainer(_write(tmp_path / "empty.py", "X = 1\n"), fn_args)


@pytest.mark.slow
def test_job_runs_in_a_fresh_process(transformed, tmp_path: Path) -> None:
    artifacts, splits, _ = transformed
    module = _write(tmp_path / "trainer_module.py", TRAINER_MODULE)
    completed = subprocess.run(
        [
            sys.executable, "-m", "compiler.runner.job",
            "--trainer-module", str(module),
            "--transform-dir", artifacts.root,
            "--output-dir", str(tmp_path / "out"),
            "--custom-config", '{"epochs": 3}',
            "--train-steps", "5",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    metrics = json.loads((tmp_path / "out" / "model_run" / "training_metrics.json").read_text())
    assert metrics["train_rows"] == len(splits["train"])
    assert metrics["custom_config"] == {"epochs": 3}
    assert metrics["train_steps"] == 5
    assert (tmp_path / "out" / "serving_model" / "saved_model.pb").is_file()
    # The last stdout line is machine-readable.
    assert "test_split" in json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_job_with_every_path_a_uri(transformed, tmp_path: Path) -> None:
    """Module, Transform output and outputs all on ram://: TensorFlow's in-memory filesystem,
    which os.path / open / glob cannot see, exactly like gs://. Any local-filesystem call on
    an artifact path in the runners would fail here."""
    from compiler.runner._tf import import_tf
    from compiler.runner.job import main

    tf = import_tf()
    artifacts, splits, _ = transformed
    remote = f"ram://job_{tmp_path.name}"
    for directory, _, files in tf.io.gfile.walk(artifacts.root):
        target = remote + "/transform" + directory[len(artifacts.root) :]
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(f"{directory}/{name}", f"{target}/{name}")
    with tf.io.gfile.GFile(remote + "/modules/trainer_module.py", "w") as f:
        f.write(textwrap.dedent(TRAINER_MODULE))

    assert main([
        "--trainer-module", remote + "/modules/trainer_module.py",
        "--transform-dir", remote + "/transform",
        "--output-dir", remote + "/out",
    ]) == 0
    with tf.io.gfile.GFile(remote + "/out/model_run/training_metrics.json") as f:
        metrics = json.loads(f.read())
    assert metrics["train_rows"] == len(splits["train"])
    assert metrics["eval_rows"] == len(splits["eval"])
    assert tf.io.gfile.exists(remote + "/out/serving_model/saved_model.pb")


@pytest.mark.slow
def test_run_transform_writes_through_gfile_only(tmp_path: Path) -> None:
    """Output on ram:// (invisible to os.path / open, like gs://) reads back complete."""
    from compiler.runner._tf import import_tf
    from compiler.runner.fn_args import fn_args_from_transform
    from compiler.runner.transform import run_transform

    tf = import_tf()
    splits = {name: frame.head(40) for name, frame in tiny_splits().items()}
    root = f"ram://transform_{tmp_path.name}"
    module = _write(tmp_path / "transform_module.py", TRANSFORM_MODULE)
    artifacts = run_transform(splits, RAW_SCHEMA, module, root)
    fn_args = fn_args_from_transform(artifacts.root, root + "/run")
    assert fn_args.train_files == [artifacts.file_pattern("train")]
    spec = {"day": tf.io.FixedLenFeature([], tf.int64)}
    for name, frame in splits.items():
        assert len(_read_split(tf, artifacts.file_pattern(name), spec)["day"]) == len(frame)
    assert tf.io.gfile.exists(f"{artifacts.transform_graph}/metadata/schema.pbtxt")
