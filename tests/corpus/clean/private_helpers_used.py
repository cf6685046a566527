"""Private helpers used as calls, as values, as decorators and through self."""

import functools

import tensorflow as tf


def _traced(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


def _by_length(name):
    return len(name)


class Tower(tf.keras.Model):
    def __init__(self, units):
        super().__init__()
        self._dense = tf.keras.layers.Dense(units)

    def _project(self, x):
        return self._dense(x)

    @_traced
    def call(self, x):
        return self._project(x)


def feature_order(names):
    return sorted(names, key=_by_length)
