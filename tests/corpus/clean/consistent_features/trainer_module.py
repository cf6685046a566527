"""Trainer reading exactly what the Transform writes, with matching types."""

import tensorflow as tf

_ID_FEATURES = ["customer_id", "product_id", "category", "sub_category"]
SPEC = {f"{name}_id": tf.io.FixedLenFeature([], tf.int64) for name in _ID_FEATURES}
SPEC["cust_value_norm"] = tf.io.FixedLenFeature([], tf.float32)
SPEC["date_bucket"] = tf.io.FixedLenFeature([], tf.int64)


class BuyerTower(tf.keras.Model):
    def call(self, inputs):
        return self.embed(
            inputs["customer_id_id"],
            inputs["date_weekly_sin"],
            inputs["date_weekly_cos"],
            inputs["category_x_sub_category"],
        )


def _serving_features(raw_spec):
    raw_spec.pop("sales")
    return {"customer_id": tf.io.FixedLenFeature([], tf.string)}


def run_fn(fn_args):
    ds = tf.data.TFRecordDataset(fn_args.train_files).map(
        lambda record: tf.io.parse_single_example(record, SPEC)
    )
    labels = ds.map(lambda features: features.pop("sales_target"))
    return labels, BuyerTower(), _serving_features({})
