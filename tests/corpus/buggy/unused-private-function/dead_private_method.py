"""A private method superseded by another and a helper that only calls itself."""

import tensorflow as tf


class Ranker(tf.keras.Model):
    def __init__(self, towers):
        super().__init__()
        self._towers = towers

    def _score_old(self, features):  # <-
        return tf.reduce_sum(self._towers[0](features), axis=1)

    def _score(self, features):
        return tf.add_n([tower(features) for tower in self._towers])

    def call(self, features):
        return self._score(features)


def _retry(step, attempts):  # <-
    return step() if attempts <= 1 else _retry(step, attempts - 1)
