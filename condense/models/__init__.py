"""Model registry: ConvNet family, MLP, LeNet, AlexNet, VGG11, ResNet18 (+ BN / AP variants), BarlowTwins, MAE.

``create_model(name, channels, num_classes, image_size, **overrides)`` builds any registered
model. Every model has ``forward(x) -> logits``, ``embed(x) -> (B, feature_dim)`` penultimate
features and ``feature_dim``; ConvNet also has ``forward_with_activations``.
"""
from . import alexnet, convnet, lenet, mae, mlp, resnet, ssl, vgg  # noqa: F401  (importing registers the models)
from .alexnet import AlexNet
from .convnet import ConvNet
from .lenet import LeNet
from .mlp import MLP
from .layout import ParamLayout
from .netfile import NetworkInfo, load_network, load_state_into, read_network_info, save_network
from .registry import batchnorm_layers, create_model, has_batchnorm, list_models, register_model
from .resnet import ResNet18
from .vgg import VGG11

__all__ = ["AlexNet", "ConvNet", "LeNet", "MLP", "NetworkInfo", "ParamLayout", "ResNet18", "VGG11",
           "batchnorm_layers", "create_model", "has_batchnorm", "list_models", "load_network", "load_state_into",
           "read_network_info", "register_model", "save_network"]
