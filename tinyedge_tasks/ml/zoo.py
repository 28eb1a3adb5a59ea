"""Small models sized for microcontrollers, all built from operators TFLM runs in int8."""
from __future__ import annotations

# Keras' default 0.99 leaves BatchNorm's moving variance far from the true (tiny) one after the few hundred
# steps a small data set gives: the model then scores at chance outside training. 0.9 converges in ~50 steps.
BN_MOMENTUM = 0.9


def tiny_cnn(keras, input_shape, num_classes, width_multiplier=1.0):
    """Two conv/pool blocks and a dense head: a few thousand parameters."""
    filters = [max(4, int(round(f * width_multiplier))) for f in (8, 16)]
    return keras.Sequential([
        keras.layers.Input(shape=input_shape),
        keras.layers.Conv2D(filters[0], 3, padding="same", activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(2, name="pool1"),
        keras.layers.Conv2D(filters[1], 3, padding="same", activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(2, name="pool2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(num_classes, activation="softmax", name="logits"),
    ], name="tiny_cnn")


def mobilenet(keras, input_shape, num_classes, width_multiplier=0.5):
    """MobileNet-v1 style: a strided stem, then depthwise-separable blocks; width scaled by alpha."""
    def width(filters):
        return max(8, int(round(filters * width_multiplier / 8)) * 8)

    layers = [keras.layers.Input(shape=input_shape),
              keras.layers.Conv2D(width(32), 3, strides=2, padding="same", use_bias=False, name="stem"),
              keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn"),
              keras.layers.ReLU(6.0, name="stem_relu")]
    for index, (filters, stride) in enumerate([(64, 1), (128, 2), (128, 1), (256, 2)], 1):
        layers += [
            keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"dw{index}"),
            keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"dw{index}_bn"),
            keras.layers.ReLU(6.0, name=f"dw{index}_relu"),
            keras.layers.Conv2D(width(filters), 1, use_bias=False, name=f"pw{index}"),
            keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"pw{index}_bn"),
            keras.layers.ReLU(6.0, name=f"pw{index}_relu"),
        ]
    layers += [keras.layers.GlobalAveragePooling2D(name="pool"),
               keras.layers.Dense(num_classes, activation="softmax", name="logits")]
    return keras.Sequential(layers, name="mobilenet")


ZOO = {"tiny_cnn": tiny_cnn, "mobilenet": mobilenet}
