"""Model registry: ConvNet family, MLP, LeNet, AlexNet, VGG11, ResNet18 (+ BN / AP variants).

``create_model(name, channels, num_classes, image_size, **overrides)`` builds any registered
model. Every model has ``forward(x) -> logits``, ``embed(x) -> (B, feature_dim)`` penultimate
features and ``feature_dim``; ConvNet also has ``forward_with_activations``.
"""
from . import alexnet, convnet, lenet, mlp, resnet, vgg  # noqa: F401  (importing registers the models)
from .alexnet import AlexNet
from .convnet import ConvNet
from .lenet import LeNet
from .mlp import MLP
from .registry import create_model, has_batchnorm, list_models, register_model
from .resnet import ResNet18
from .vgg import VGG11

__all__ = ["AlexNet", "ConvNet", "LeNet", "MLP", "ResNet18", "VGG11",
           "create_model", "has_batchnorm", "list_models", "register_model"]
