"""Transform: ids, a z-score and the target."""

import tensorflow as tf
import tensorflow_transform as tft


def preprocessing_fn(inputs):
    outputs = {}
    for name in ("customer_id", "product_id", "category"):
        outputs[f"{name}_id"] = tft.compute_and_apply_vocabulary(
            inputs[name], num_oov_buckets=1, vocab_filename=f"{name}_vocab"
        )
    outputs["cust_value_norm"] = tft.scale_to_z_score(inputs["cust_value"])
    outputs["sales_target"] = tf.math.log1p(tf.cast(inputs["sales"], tf.float32))
    return outputs
