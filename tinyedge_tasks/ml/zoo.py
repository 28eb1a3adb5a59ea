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


def _application(keras, application, name, input_shape, num_classes, alpha, weights):
    """A keras.applications backbone (no top) with a new head for the data set's classes. Flat, not nested: the
    backbone's layers are the model's own, so tfmot can prune and quantize them. A grayscale input into a
    pre-trained RGB backbone: see fold_gray."""
    backbone = application(input_shape=input_shape, alpha=alpha, include_top=False,
                           weights=None if input_shape[-1] == 1 and weights else weights)
    if input_shape[-1] == 1 and weights:
        rgb = application(input_shape=(*input_shape[:2], 3), alpha=alpha, include_top=False, weights=weights)
        fold_gray(rgb, backbone)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(backbone.output)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="logits")(pooled)
    return keras.Model(backbone.input, outputs, name=f"{name}_{alpha:g}")


def fold_gray(rgb, gray) -> None:
    """The RGB backbone's weights into the same backbone with a one-channel input, the first convolution's kernel
    summed over its three input channels: on a gray image repeated to RGB that computes exactly what the RGB
    kernel does (zero padding included), and the model has no channel-repeating operator that a firmware backend
    would have to run."""
    first = first_conv(rgb)
    for layer in rgb.layers:
        weights = layer.get_weights()
        if layer.name == first.name:
            weights = [folded_kernel(weights[0]), *weights[1:]]
        if weights:
            gray.get_layer(layer.name).set_weights(weights)


def folded_kernel(kernel):
    """A (kh, kw, 3, filters) kernel summed over its input channels, kept 4-D (kh, kw, 1, filters)."""
    return kernel.sum(axis=2, keepdims=True)


def first_conv(model):
    """The backbone's stem convolution, the only layer that sees the input's channels."""
    return next(layer for layer in model.layers if type(layer).__name__ == "Conv2D")


def mobilenet_v1(keras, input_shape, num_classes, width_multiplier=1.0, weights=None):
    """keras.applications.MobileNet (v1): depthwise-separable blocks, 28 layers deep."""
    return _application(keras, keras.applications.MobileNet, "mobilenet_v1", input_shape, num_classes,
                        width_multiplier, weights)


def mobilenet_v2(keras, input_shape, num_classes, width_multiplier=1.0, weights=None):
    """keras.applications.MobileNetV2: inverted residual blocks (with Adds); Edge Impulse's image default."""
    return _application(keras, keras.applications.MobileNetV2, "mobilenet_v2", input_shape, num_classes,
                        width_multiplier, weights)


HEAD = ("pool", "logits")   # the layers an application model adds to its backbone
ZOO = {"tiny_cnn": tiny_cnn, "mobilenet": mobilenet, "mobilenet_v1": mobilenet_v1, "mobilenet_v2": mobilenet_v2}
# the alphas keras.applications has ImageNet weights for: other widths would have no weights to load
PRETRAINED_ALPHAS = {"mobilenet_v1": (0.25, 0.5, 0.75, 1.0), "mobilenet_v2": (0.35, 0.5, 0.75, 1.0)}


def backbone_layers(model) -> list:
    """The layers of an application model that came from its backbone (what is frozen, then fine-tuned)."""
    return [layer for layer in model.layers
            if layer.name not in HEAD and type(layer).__name__ != "InputLayer"]
