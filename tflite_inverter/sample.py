"""The sample model the README converts: a small float CNN made with the TFLite converter.

``tflite-inverter sample sample.tflite`` (or ``python -m tflite_inverter.sample``) writes it.
It uses the ops of a typical mobile detector: CONV_2D, DEPTHWISE_CONV_2D, ADD, PAD,
MAX_POOL_2D, RESIZE_BILINEAR, CONCATENATION, MEAN, FULLY_CONNECTED, HARD_SWISH, LOGISTIC, SOFTMAX.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .emit.atomic import write_bytes_atomic


def make_sample_model(seed: int = 0) -> bytes:
    from .logs import import_tensorflow, quiet_stderr

    tf = import_tensorflow()

    rng = np.random.default_rng(seed)

    def w(*shape):
        return tf.constant(rng.normal(0, 0.3, size=shape).astype(np.float32))

    conv1, dw, conv2, fc = w(3, 3, 3, 8), w(3, 3, 8, 1), w(1, 1, 8, 16), w(16 + 8, 4)
    b1, b2, b3 = w(8), w(16), w(4)

    class Sample(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 64, 64, 3], tf.float32, name="image")])
        def serve(self, image):
            x = tf.nn.relu6(tf.nn.conv2d(image, conv1, 2, "SAME") + b1)
            y = tf.nn.depthwise_conv2d(x, dw, [1, 1, 1, 1], "SAME")
            x = x + y
            x = tf.nn.max_pool2d(tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]]), 2, 2, "VALID")
            z = tf.nn.conv2d(x, conv2, 1, "VALID") + b2
            z = z * tf.nn.relu6(z + 3.0) / 6.0
            up = tf.compat.v1.image.resize_bilinear(z, [32, 32], half_pixel_centers=True)
            features = tf.reduce_mean(tf.concat([up[:, :, :, :8], tf.image.resize(x, [32, 32])], axis=-1), axis=[1, 2])
            features = tf.concat([features, tf.sigmoid(features[:, :8])], axis=-1)
            scores = tf.nn.softmax(tf.matmul(features, fc) + b3)
            return {"scores": scores, "feature_map": z}

    module = Sample()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    with quiet_stderr():
        return converter.convert()


def write_sample_model(path: str | Path, *, overwrite: bool = False) -> Path:
    return write_bytes_atomic(Path(path), make_sample_model(), overwrite=overwrite)


if __name__ == "__main__":
    print(write_sample_model(sys.argv[1] if len(sys.argv) > 1 else "sample.tflite"))
