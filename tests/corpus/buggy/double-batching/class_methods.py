"""Batched in one method, batched again in another through self."""

import tensorflow as tf


class CandidateIndexer:
    def __init__(self, files, product_tower):
        self.files = files
        self.product_tower = product_tower

    def _dataset(self):
        return tf.data.TFRecordDataset(self.files).map(tf.io.parse_tensor).batch(512)

    def embeddings(self):
        ds = self._dataset()
        return ds.batch(128).map(self.product_tower)  # <-

    def train(self, model):
        return model.fit(self._dataset(), batch_size=64, epochs=1)  # <-
