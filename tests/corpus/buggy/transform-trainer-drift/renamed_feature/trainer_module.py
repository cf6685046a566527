"""Trainer reading a name the Transform never writes (`sub_category_id`)."""

import tensorflow as tf


class ProductTower(tf.keras.Model):
    def call(self, features):
        ids = features["product_id_id"]
        category = features["category_id"]
        sub_category = features["sub_category_id"]  # <-
        return self.embed(ids, category, sub_category)


def run_fn(fn_args):
    label = fn_args.custom_config.get("label", "sales_target")
    return ProductTower(), label
