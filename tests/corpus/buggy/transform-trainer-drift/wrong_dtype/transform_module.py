"""Transform: bucket index (int64) and a z-score (float32)."""

import tensorflow_transform as tft

_NUMERIC = ["cust_value"]


def _t(key, suffix):
    return key + "_" + suffix


def preprocessing_fn(inputs):
    outputs = {}
    for key in _NUMERIC:
        outputs[_t(key, "bucket")] = tft.bucketize(inputs[key], num_buckets=100)
        outputs[_t(key, "norm")] = tft.scale_to_z_score(inputs[key])
    return outputs
