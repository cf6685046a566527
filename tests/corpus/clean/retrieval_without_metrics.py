"""A Retrieval task without metrics computes no top-K: no compute_metrics needed."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow_recommenders as tfrs  # noqa: E402


class RetrievalModel(tfrs.Model):
    def __init__(self, buyer_tower, product_tower):
        super().__init__()
        self.buyer_tower = buyer_tower
        self.product_tower = product_tower
        self.task = tfrs.tasks.Retrieval()

    def compute_loss(self, features, training=False):
        buyers = self.buyer_tower(features["customer_id_id"])
        products = self.product_tower(features["product_id_id"])
        return self.task(buyers, products)
