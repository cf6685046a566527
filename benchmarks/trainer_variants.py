"""Trainer variants tried for issue #16 that no recforge knob emits (benchmarks/training_speed.py).

Each is the compiled hybrid_v1 trainer module with textual edits (old, new), measured side by
side with the module as compiled, and not adopted: RESULTS.md, "Training throughput", has the
figures.
"""

from __future__ import annotations

#: One embedding table per tower and embedding width instead of one per feature (the ids of a
#: width's features offset into their shared table and looked up with one gather): fewer
#: gathers, gradients and optimizer variables per step. Same model up to the order of the
#: encoder's output columns and the tables' random initialisation.
FUSED_ENCODER_CALL = '''    def call(self, inputs):
        encoded = []
        for spec in self.features:
            value = inputs[spec["name"]]
            if spec["name"] in self.embeddings:
                encoded.append(self.embeddings[spec["name"]](tf.reshape(value, [-1])))
            else:
                encoded.append(tf.reshape(tf.cast(value, tf.float32), [-1, 1]))
        return tf.concat(encoded, axis=1)
'''

FUSED_ENCODER_NEW = '''    def build(self, input_shape):
        # Fused variant: one table per embedding width, each feature's ids at its offset. The
        # per-feature layers of __init__ are never called, so they never make variables.
        widths = {}
        for spec in self.features:
            if spec["name"] in self.embeddings:
                layer = self.embeddings[spec["name"]]
                names, offsets = widths.setdefault(layer.output_dim, ([], [0]))
                names.append(spec["name"])
                offsets.append(offsets[-1] + layer.input_dim)
        self.fused = [
            (tuple(names), tuple(offsets[:-1]),
             tf.keras.layers.Embedding(offsets[-1], width, name="fused_embedding_%d" % width))
            for width, (names, offsets) in widths.items()
        ]
        super().build(input_shape)

    def call(self, inputs):
        encoded = []
        for names, offsets, table in self.fused:
            ids = tf.stack([tf.reshape(inputs[name], [-1]) for name in names], axis=1)
            vectors = table(ids + tf.constant(offsets, tf.int64))
            encoded.append(tf.reshape(vectors, [-1, len(names) * table.output_dim]))
        for spec in self.features:
            if spec["encoding"] == "dense":
                value = inputs[spec["name"]]
                encoded.append(tf.reshape(tf.cast(value, tf.float32), [-1, 1]))
        return tf.concat(encoded, axis=1)
'''

#: Keras' Adam with each update as TensorFlow's fused ResourceApplyAdam kernel: the same
#: arithmetic (bias-corrected rate, epsilon after the square root) in one pass over a variable
#: instead of about eight ops; an embedding's sparse gradient is made dense first, which its
#: update (every row's moments decay) reads whole anyway. Slots stay Keras' own (build).
FUSED_ADAM = """class FusedAdam(tf.keras.optimizers.Adam):
    def update_step(self, gradient, variable):
        if self.amsgrad:
            return super().update_step(gradient, variable)
        slot = self._index_dict[self._var_key(variable)]
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[slot].handle,
            v=self._velocities[slot].handle, beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step), lr=tf.cast(self.learning_rate, dtype),
            beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.convert_to_tensor(gradient), use_locking=False)


def _make_optimizer():"""

SOURCE_VARIANTS: dict[str, list[tuple[str, str]]] = {
    "optimizer: Adam as one fused kernel": [
        ("def _make_optimizer():", FUSED_ADAM),
        ("return tf.keras.optimizers.Adam(", "return FusedAdam("),
    ],
    # Keras 2's legacy Adam applies dense gradients with one fused ResourceApplyAdam kernel.
    "optimizer: legacy Adam": [
        ("tf.keras.optimizers.Adam(", "tf.keras.optimizers.legacy.Adam("),
        # The legacy optimizer creates its slots with _create_all_weights, not build.
        ("model.optimizer.build(model.trainable_variables)",
         "model.optimizer._create_all_weights(model.trainable_variables)"),
    ],
    "one embedding table per tower and width": [(FUSED_ENCODER_CALL, FUSED_ENCODER_NEW)],
}
