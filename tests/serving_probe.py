"""Load a SavedModel in a fresh process and call every signature with raw tf.Examples.

Prints one JSON line: signature -> outputs of the first example.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf

BUYER = {"customer_id": "C001", "date": 1_700_000_000, "cust_value": 20.0}
PRODUCT = {"product_id": "P004", "category": "cat1", "sub_category": "sub05"}


def example(values: dict) -> bytes:
    feature = {}
    for key, value in values.items():
        if isinstance(value, str):
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        elif isinstance(value, int):
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        else:
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def main(path: str) -> None:
    loaded = tf.saved_model.load(path)
    answers = {}
    for name, signature in loaded.signatures.items():
        outputs = set(signature.structured_outputs)
        values = BUYER if "product_ids" in outputs else {**BUYER, **PRODUCT}
        result = signature(examples=tf.constant([example(values), example(values)]))
        first = {}
        for key, tensor in result.items():
            value = tensor.numpy()[0]
            if key == "product_ids":
                first[key] = [v.decode() for v in value]
            elif key == "scores":
                first[key] = [float(v) for v in value]
            else:
                first[key] = float(value.reshape(-1)[0])
        answers[name] = first
    print(json.dumps(answers))


if __name__ == "__main__":
    main(sys.argv[1])
