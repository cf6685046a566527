"""FactorizedTopK tied to `not training`; a Ranking task has no top-K metrics."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402


class MultitaskModel(tfrs.Model):
    def __init__(self, buyer_tower, product_tower, rating_head, candidates):
        super().__init__()
        self.buyer_tower = buyer_tower
        self.product_tower = product_tower
        self.rating_head = rating_head
        self.retrieval_task = tfrs.tasks.Retrieval(
            metrics=tfrs.metrics.FactorizedTopK(candidates=candidates.map(product_tower))
        )
        self.ranking_task = tfrs.tasks.Ranking(loss=tf.keras.losses.MeanSquaredError())

    def compute_loss(self, features, training=False):
        buyers = self.buyer_tower(features["customer_id_id"])
        products = self.product_tower(features["product_id_id"])
        predictions = self.rating_head(tf.concat([buyers, products], axis=1))
        retrieval = self.retrieval_task(buyers, products, compute_metrics=not training)
        ranking = self.ranking_task(labels=features["sales_target"], predictions=predictions)
        return retrieval + ranking
