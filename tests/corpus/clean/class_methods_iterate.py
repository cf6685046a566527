"""Batched once in a method; the other methods iterate or unbatch it."""

import tensorflow as tf


class CandidateIndexer:
    def __init__(self, files, product_tower):
        self.files = files
        self.product_tower = product_tower

    def _dataset(self):
        return tf.data.TFRecordDataset(self.files).map(tf.io.parse_tensor).batch(512)

    def embeddings(self):
        return [self.product_tower(batch) for batch in self._dataset()]

    def ids(self):
        return self._dataset().unbatch().batch(128)

    def train(self, model):
        return model.fit(self._dataset(), epochs=1)
