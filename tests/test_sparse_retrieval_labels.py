"""model.retrieval.sparse_labels: the emitted ``SparseLabelRetrieval`` computes the loss of
``tfrs.tasks.Retrieval`` with its default loss, the positives given as column indices instead
of an identity matrix of labels. Checked against TFRS itself on random embeddings, for both
loss reductions, loss and gradients. No Transform: only the emitted class is called.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from compiler.core.pipeline import compile_overrides

pytestmark = pytest.mark.slow


def _emitted_module(tmp_path: Path, overrides: list[str]):
    compile_overrides(["model=hybrid_v1", "features=cherng_v3", *overrides],
                      output_dir=tmp_path)
    spec = importlib.util.spec_from_file_location(
        f"sparse_labels_{len(overrides)}", tmp_path / "trainer_module.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("reduction", "keras_reduction"), [("sum", "SUM"),
                                                             ("mean", "SUM_OVER_BATCH_SIZE")])
def test_sparse_labels_give_the_tfrs_retrieval_loss_and_gradients(
        tmp_path: Path, reduction: str, keras_reduction: str) -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    module = _emitted_module(tmp_path, [f"model.retrieval.loss_reduction={reduction}"])
    tf, tfrs = module.tf, module.tfrs
    rng = np.random.default_rng(7)
    buyers = tf.constant(rng.normal(size=(37, 8)), tf.float32)
    products = tf.constant(rng.normal(size=(37, 8)), tf.float32)
    tfrs_task = tfrs.tasks.Retrieval(loss=tf.keras.losses.CategoricalCrossentropy(
        from_logits=True, reduction=getattr(tf.keras.losses.Reduction, keras_reduction)))

    def loss_and_gradients(task):
        with tf.GradientTape() as tape:
            tape.watch([buyers, products])
            loss = task(buyers, products, compute_metrics=False)
        return loss.numpy(), [g.numpy() for g in tape.gradient(loss, [buyers, products])]

    sparse_loss, sparse_gradients = loss_and_gradients(module.SparseLabelRetrieval())
    tfrs_loss, tfrs_gradients = loss_and_gradients(tfrs_task)
    np.testing.assert_allclose(sparse_loss, tfrs_loss, rtol=1e-5)
    for sparse, dense in zip(sparse_gradients, tfrs_gradients, strict=True):
        np.testing.assert_allclose(sparse, dense, rtol=1e-4, atol=1e-6)
