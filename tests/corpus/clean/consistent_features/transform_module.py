"""Transform following the recforge naming conventions."""

import math

import tensorflow as tf
import tensorflow_transform as tft

_EMBEDDED = ("customer_id", "product_id", "category", "sub_category")


def _seconds_to_days(seconds):
    return tf.cast(seconds, tf.float32) / 86400.0


def preprocessing_fn(inputs):
    outputs = {}
    for name in _EMBEDDED:
        outputs[f"{name}_id"] = tft.compute_and_apply_vocabulary(
            inputs[name], num_oov_buckets=1, vocab_filename=f"{name}_vocab"
        )
    days = _seconds_to_days(inputs["date"])
    outputs["date_weekly_sin"] = tf.sin(2 * math.pi * days / 7)
    outputs["date_weekly_cos"] = tf.cos(2 * math.pi * days / 7)
    outputs["date_bucket"] = tft.bucketize(inputs["date"], num_buckets=100)
    outputs["cust_value_norm"] = tft.scale_to_z_score(inputs["cust_value"])
    outputs["category_x_sub_category"] = tf.strings.to_hash_bucket_fast(
        tf.strings.join([inputs["category"], inputs["sub_category"]], "_"), 1000
    )
    outputs["sales_target"] = tf.math.log1p(tf.cast(inputs["sales"], tf.float32))
    return outputs
