"""The TFRS tutorial model: FactorizedTopK runs on every training batch."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402


class RetrievalModel(tfrs.Model):
    def __init__(self, buyer_tower, product_tower, candidates):
        super().__init__()
        self.buyer_tower = buyer_tower
        self.product_tower = product_tower
        self.task: tf.keras.layers.Layer = tfrs.tasks.Retrieval(
            metrics=tfrs.metrics.FactorizedTopK(candidates=candidates.map(product_tower))
        )

    def compute_loss(self, features, training=False):
        buyers = self.buyer_tower(features["customer_id_id"])
        products = self.product_tower(features["product_id_id"])
        return self.task(buyers, products, compute_metrics=True)  # <-
