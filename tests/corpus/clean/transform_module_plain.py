"""A Transform module: TensorFlow without TFRS needs no TF_USE_LEGACY_KERAS."""

import tensorflow as tf
import tensorflow_transform as tft


def preprocessing_fn(inputs):
    return {
        "customer_id_id": tft.compute_and_apply_vocabulary(
            inputs["customer_id"], num_oov_buckets=1, vocab_filename="customer_id_vocab"
        ),
        "sales_target": tf.math.log1p(tf.cast(inputs["sales"], tf.float32)),
    }
