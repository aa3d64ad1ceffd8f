"""STCNN (Xu et al., CVPR 2019), written fresh: a temporal coherence branch and a spatial segmentation branch.

- The temporal coherence branch reads the previous `DELTA` frames and predicts the next one; it is pretrained
  without labels (MSE plus a small adversarial term against `FrameDiscriminator`) and its multi-scale decoder
  features are fused into the segmentation branch.
- The spatial segmentation branch runs an ImageNet EfficientNet-Lite0, pyramid pooling on its deepest features and
  a top-down path with lateral connections; at each level the coarse-to-fine attention module computes
  out = x + sigmoid(coarser prediction) * F(x), and every level has a side output.
- The previous frame's mask enters the decoder at every level (our addition: a mask-propagation prior that is
  learned instead of only gating the output); the backbone and temporal features do not depend on it, so they are
  computed once per frame and shared by every object, and only the light decoder runs per object.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import FEATURE_CHANNELS, EfficientNetLite0

DELTA = 4  # frames the temporal branch reads
DECODER_CHANNELS = 64
TEMPORAL_CHANNELS = (24, 48, 64, 96)  # encoder widths at strides 2, 4, 8, 16
SIDE_WEIGHTS = (0.2, 0.3, 0.5, 1.0)  # loss weights of the side outputs at strides 32, 16, 8, 4


def normalise(frames: torch.Tensor) -> torch.Tensor:
    """uint8-range RGB (N, 3, H, W) float -> the backbone's input scale."""
    return (frames - 127.0) / 128.0


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def upsample_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


class TemporalCoherence(nn.Module):
    """Encoder-decoder over the previous DELTA frames that predicts the next frame.

    forward returns the predicted frame (in the normalised input scale) and decoder features at strides
    16, 8 and 4 for the segmentation branch.
    """

    def __init__(self):
        super().__init__()
        c2, c4, c8, c16 = TEMPORAL_CHANNELS
        self.enc2 = conv_bn_relu(3 * DELTA, c2, stride=2)
        self.enc4 = conv_bn_relu(c2, c4, stride=2)
        self.enc8 = conv_bn_relu(c4, c8, stride=2)
        self.enc16 = nn.Sequential(conv_bn_relu(c8, c16, stride=2), conv_bn_relu(c16, c16))
        self.dec8 = conv_bn_relu(c16 + c8, c8)
        self.dec4 = conv_bn_relu(c8 + c4, c4)
        self.dec2 = conv_bn_relu(c4 + c2, c2)
        self.to_frame = nn.Conv2d(c2, 3, 3, padding=1)

    def forward(self, previous: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """previous: (N, 3 * DELTA, H, W), normalised, oldest frame first."""
        e2 = self.enc2(previous)
        e4 = self.enc4(e2)
        e8 = self.enc8(e4)
        d16 = self.enc16(e8)
        d8 = self.dec8(torch.cat([upsample_to(d16, e8), e8], 1))
        d4 = self.dec4(torch.cat([upsample_to(d8, e4), e4], 1))
        d2 = self.dec2(torch.cat([upsample_to(d4, e2), e2], 1))
        frame = torch.tanh(
            F.interpolate(self.to_frame(d2), scale_factor=2, mode="bilinear", align_corners=False)
        )
        return frame, [d16, d8, d4]


class FrameDiscriminator(nn.Module):
    """Tells a real next frame from a predicted one, given the previous frames (temporal pretraining only)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3 * (DELTA + 1), 32, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(32, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(64, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(128, 1, 3, 1, 1),
        )  # fmt: skip

    def forward(self, previous: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([previous, frame], 1))


class PyramidPooling(nn.Module):
    def __init__(self, cin: int, cout: int, bins=(1, 2, 3, 6)):
        super().__init__()
        self.bins = bins
        self.stages = nn.ModuleList(nn.Conv2d(cin, cout // 4, 1, bias=False) for _ in bins)
        self.fuse = conv_bn_relu(cin + cout // 4 * len(bins), cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [
            upsample_to(stage(F.adaptive_avg_pool2d(x, b)), x) for b, stage in zip(self.bins, self.stages)
        ]
        return self.fuse(torch.cat([x, *pooled], 1))


class AttentionLevel(nn.Module):
    """One top-down level: lateral backbone features + previous mask + temporal features + the coarser level,
    refined by F and gated by the coarser prediction (out = x + sigmoid(coarser) * F(x))."""

    def __init__(self, backbone_channels: int, temporal_channels: int):
        super().__init__()
        c = DECODER_CHANNELS
        self.lateral = nn.Conv2d(backbone_channels + 1, c, 1)
        self.temporal = nn.Conv2d(temporal_channels, c, 1)
        self.refine = nn.Sequential(conv_bn_relu(c, c), nn.Conv2d(c, c, 3, padding=1))
        self.side = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, feature, mask, temporal, coarser, coarser_logit):
        x = (
            self.lateral(torch.cat([feature, mask], 1))
            + self.temporal(temporal)
            + upsample_to(coarser, feature)
        )
        x = F.relu(x)
        x = x + torch.sigmoid(upsample_to(coarser_logit, feature)) * self.refine(x)
        return x, self.side(x)


class SegmentationDecoder(nn.Module):
    """Per-object head over shared features: logits at strides 32, 16, 8, 4 (the last is the prediction)."""

    def __init__(self):
        super().__init__()
        c = DECODER_CHANNELS
        c4, c8, c16, c32 = FEATURE_CHANNELS
        t16, t8, t4 = TEMPORAL_CHANNELS[3], TEMPORAL_CHANNELS[2], TEMPORAL_CHANNELS[1]
        self.top = PyramidPooling(c32 + 1, c)
        self.top_temporal = nn.Conv2d(t16, c, 1)
        self.top_side = nn.Conv2d(c, 1, 3, padding=1)
        self.level16 = AttentionLevel(c16, t16)
        self.level8 = AttentionLevel(c8, t8)
        self.level4 = AttentionLevel(c4, t4)

    def forward(self, features, temporal, mask: torch.Tensor) -> list[torch.Tensor]:
        """features: backbone strides 4..32; temporal: strides 16, 8, 4; mask: (N, 1, H, W) previous mask in [0, 1]."""
        f4, f8, f16, f32 = features
        t16, t8, t4 = temporal

        def at(x):
            return F.adaptive_avg_pool2d(mask, x.shape[-2:])

        x = self.top(torch.cat([f32, at(f32)], 1))
        x = F.relu(x + F.adaptive_avg_pool2d(self.top_temporal(t16), x.shape[-2:]))
        logit32 = self.top_side(x)
        x, logit16 = self.level16(f16, at(f16), t16, x, logit32)
        x, logit8 = self.level8(f8, at(f8), t8, x, logit16)
        _, logit4 = self.level4(f4, at(f4), t4, x, logit8)
        return [logit32, logit16, logit8, logit4]


ABLATIONS = ("temporal", "mask")  # parts `decode` can switch off, to measure what each one brings


class STCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = EfficientNetLite0()
        self.temporal = TemporalCoherence()
        self.decoder = SegmentationDecoder()
        self.ablate: frozenset[str] = frozenset()  # not a weight: set per run for ablation studies

    def encode(self, frame: torch.Tensor, previous: torch.Tensor):
        """Shared per-frame work: frame (N, 3, H, W) and previous (N, 3 * DELTA, H, W), both normalised."""
        features = self.backbone(frame)
        predicted_frame, temporal = self.temporal(previous)
        return features, temporal, predicted_frame

    def decode(self, features, temporal, masks: torch.Tensor) -> list[torch.Tensor]:
        """masks: (N * K, 1, H, W) for K objects per frame; features are repeated to match."""
        k = masks.shape[0] // features[0].shape[0]
        # Zeros rather than skipped layers: the decoder keeps its shape, and online training (which also goes
        # through here) can adapt to the missing input as a model trained without it would.
        if "temporal" in self.ablate:
            temporal = [torch.zeros_like(t) for t in temporal]
        if "mask" in self.ablate:
            masks = torch.zeros_like(masks)
        if k > 1:
            features = [f.repeat_interleave(k, 0) for f in features]
            temporal = [t.repeat_interleave(k, 0) for t in temporal]
        return self.decoder(features, temporal, masks)

    def forward(self, frame, previous, masks):
        features, temporal, _ = self.encode(frame, previous)
        return self.decode(features, temporal, masks)

    def with_own_decoder(self) -> STCNN:
        """A model that shares this one's backbone and temporal branch (which online training never changes) and
        has its own copy of the decoder, so one loaded model can serve several videos at once."""
        other = STCNN.__new__(STCNN)
        nn.Module.__init__(other)
        other.backbone, other.temporal = self.backbone, self.temporal
        other.decoder = copy.deepcopy(self.decoder)
        other.ablate = self.ablate
        return other

    def train(self, mode: bool = True):
        # The backbone's BatchNorm keeps its ImageNet statistics: our batches are too small to re-estimate them.
        super().train(mode)
        for module in self.backbone.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self


def segmentation_loss(
    logits: list[torch.Tensor], mask: torch.Tensor, region: torch.Tensor | None = None
) -> torch.Tensor:
    """BCE on every side output plus Dice on the last. region (0/1, shaped like mask): only these pixels count, as
    when inference gates the prediction to near the previous mask and nothing else can matter."""
    loss = 0.0
    for weight, logit in zip(SIDE_WEIGHTS, logits):
        logit = F.interpolate(logit, size=mask.shape[-2:], mode="bilinear", align_corners=False)
        loss = loss + weight * F.binary_cross_entropy_with_logits(logit, mask, weight=region)
    return loss + dice_error(logits[-1], mask, region).mean()


def dice_error(logit: torch.Tensor, mask: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """1 - Dice of each sample's prediction against its mask (only `region`'s pixels, where given): how badly the
    model does on it, whatever the object's size."""
    p = torch.sigmoid(F.interpolate(logit, size=mask.shape[-2:], mode="bilinear", align_corners=False))
    if region is not None:
        p = p * region
    return 1 - (2 * (p * mask).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + mask.sum((1, 2, 3)) + 1)
