"""How long do all registered passes take over one trainer module?

    python benchmarks/passes_speed.py [FILE] [--runs 20]

Prints the median (and min/max) over ``--runs`` runs of ``run_passes`` over FILE, parse
included, as a compile does it. FILE defaults to the largest ``*.py`` under ``generated/``, or,
when there is none, a synthetic ~600-line trainer in the shape recforge emits. Target (issue
#8, figure 2): <= 100 ms. ``--write`` records the figure in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from compiler.check import _registered_passes  # noqa: E402
from compiler.passes import run_passes  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import update_section, write_summary  # noqa: E402

_HEADER = '''\
"""Synthetic trainer module for the pass benchmark (shape of recforge's generated trainers)."""

import json
import logging
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

BATCH_SIZE = 1024
EMBEDDING_DIM = 32
FEATURES = ["customer_id", "product_id", "category", "sub_category"]


def _input_fn(file_pattern, data_accessor, tf_transform_output, batch_size=BATCH_SIZE):
    from tfx_bsl.public import tfxio

    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key="sales_target"),
        tf_transform_output.transformed_metadata.schema,
    )


def _test_split_dir(fn_args):
    train_dir = fn_args.train_files[0].rsplit("/", 1)[0]
    return f"{train_dir.rsplit('/', 1)[0]}/Split-test"
'''

_BLOCK = '''

def _tower_{i}(vocab_sizes, layers, l2=1e-4):
    """Tower {i}: embeddings of the id features, then an MLP."""
    import tensorflow as tf

    inputs = {{}}
    encoded = []
    for name in FEATURES:
        inputs[f"{{name}}_id"] = tf.keras.Input(shape=(), name=f"{{name}}_id", dtype=tf.int64)
        table = tf.keras.layers.Embedding(vocab_sizes.get(name, 1000) + 1, EMBEDDING_DIM)
        encoded.append(table(inputs[f"{{name}}_id"]))
    x = tf.keras.layers.Concatenate()(encoded)
    for width in layers:
        x = tf.keras.layers.Dense(
            width, activation="relu", kernel_regularizer=tf.keras.regularizers.l2(l2)
        )(x)
    return tf.keras.Model(inputs, x, name="tower_{i}")


def _candidates_{i}(fn_args, tf_transform_output, product_tower):
    """Deduplicated candidate embeddings for index {i}."""
    import tensorflow as tf

    ds = _input_fn(fn_args.eval_files, fn_args.data_accessor, tf_transform_output)
    ids = ds.unbatch().map(lambda features: features["product_id_id"]).unique()
    count = ids.reduce(0, lambda n, _: n + 1)
    logging.info("%s unique products", int(count))
    embeddings = []
    for batch in ids.batch(128):
        embeddings.append(product_tower({{"product_id_id": batch}}))
    return tf.concat(embeddings, axis=0)


def _evaluate_{i}(model, fn_args, tf_transform_output, metrics):
    """Test-split evaluation {i}, found with tf.io.gfile."""
    import tensorflow as tf

    test_dir = _test_split_dir(fn_args)
    if not tf.io.gfile.exists(test_dir):
        logging.error("no test split at %s", test_dir)
        metrics["test_split"] = "missing"
        return metrics
    files = tf.io.gfile.glob(f"{{test_dir}}/*.gz")
    test_ds = _input_fn(files, fn_args.data_accessor, tf_transform_output)
    try:
        result = model.evaluate(test_ds, return_dict=True)
    except Exception:
        logging.exception("test evaluation failed")
        raise
    for key, value in result.items():
        metrics[f"test_{{key}}"] = float(value)
    metrics["test_split"] = "found"
    return metrics
'''

_FOOTER = '''

def run_fn(fn_args):
    import tensorflow as tf
    import tensorflow_recommenders as tfrs
    import tensorflow_transform as tft

    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train_ds = _input_fn(fn_args.train_files, fn_args.data_accessor, tf_transform_output)
    eval_ds = _input_fn(fn_args.eval_files, fn_args.data_accessor, tf_transform_output)
    buyer = _tower_0({{}}, [128, 64, 32])
    product = _tower_1({{}}, [128, 64, 32])

    class Model(tfrs.Model):
        def __init__(self):
            super().__init__()
            self.task = tfrs.tasks.Retrieval()

        def compute_loss(self, features, training=False):
            return self.task(buyer(features), product(features))

    model = Model()
    model.compile(optimizer=tf.keras.optimizers.Adam(0.001))
    history = model.fit(train_ds, validation_data=eval_ds, epochs=2)
    metrics = {{"history": history.history}}
    candidates = _candidates_0(fn_args, tf_transform_output, product)
    metrics = _evaluate_0(model, fn_args, tf_transform_output, metrics)
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(f"{{fn_args.model_run_dir}}/training_metrics.json", "w") as out:
        out.write(json.dumps(metrics))
    tf.saved_model.save(model, fn_args.serving_model_dir)
    return candidates
'''


def synthetic_trainer(lines: int = 600) -> str:
    """A realistic trainer module of about ``lines`` lines."""
    parts = [_HEADER]
    i = 0
    while sum(p.count("\n") for p in parts) + _FOOTER.count("\n") < lines:
        parts.append(_BLOCK.format(i=i))
        i += 1
    parts.append(_FOOTER.format())
    return "".join(parts)


def default_file() -> tuple[str, str]:
    generated = sorted(
        (ROOT / "generated").rglob("*.py"), key=lambda p: p.stat().st_size, reverse=True
    )
    if generated:
        return str(generated[0]), generated[0].read_text(encoding="utf-8")
    return "synthetic_trainer_module.py", synthetic_trainer()


def measure(name: str, source: str, runs: int) -> list[float]:
    passes = _registered_passes()
    run_passes({name: source}, passes)  # warm-up: imports, caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run_passes({name: source}, passes)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", help="module to check (default: see above)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--summary", help="also write the figure as JSON here")
    args = parser.parse_args(argv)
    if args.file:
        name, source = args.file, Path(args.file).read_text(encoding="utf-8")
    else:
        name, source = default_file()
    times = measure(name, source, args.runs)
    shown = Path(name).relative_to(ROOT) if Path(name).is_relative_to(ROOT) else name
    if args.write:
        update_section(
            "passes-speed", "Static passes speed (issue #8, figure 2)",
            f"All {len(_registered_passes())} registered passes over `{shown}` "
            f"({source.count(chr(10))} lines), parse included, as a compile runs them: "
            f"**{statistics.median(times):.1f} ms** median of {args.runs} "
            f"(min {min(times):.1f}, max {max(times):.1f}). Target: <= 100 ms.",
            "python benchmarks/passes_speed.py --write")
    if args.summary:
        write_summary(args.summary, {"median_ms": statistics.median(times),
                                     "lines": source.count(chr(10)), "file": str(shown)})
    print(
        f"{name}: {source.count(chr(10))} lines, {len(_registered_passes())} passes, "
        f"{args.runs} runs: median {statistics.median(times):.1f} ms "
        f"(min {min(times):.1f}, max {max(times):.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
