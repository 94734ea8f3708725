"""The fast reader's network: a small CNN that reads a whole grey crop with CTC.

fast-plate-ocr's design reads a 64x128 grey crop into fixed character slots; ours keeps that
input but reads with CTC over the crop's columns instead, so every character comes with the
columns it was read from (its x extent in the crop) and a plate may have any length. The
column features see the crop's whole height (the last convolution spans it), so the network
learns which row is the serial and skips the state name, slogans and stickers. A second small
head gives the serial row's top and bottom (shares of the crop's height): the characters'
boxes take their height from it.

    image (N, 1, 64, 128) in 0..1 -> conv stages -> (N, C, 4, 32) -> height-wide conv
    -> (N, C, 32) -> two 1-D convolutions (context along the plate) -> 37-way CTC (blank, 0-9 A-Z)
"""

from __future__ import annotations

from typing import Final

import torch
from torch import nn

__all__ = ["CLASSES", "FastPlateNet", "ProbsAndRow"]

CLASSES: Final = 37  # the CTC blank (0), then plate_ocr.constants.CLASS_NAMES


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class FastPlateNet(nn.Module):
    """Logits (N, T=32, 37) over the crop's columns, and the row's (top, bottom) in 0..1."""

    def __init__(self, width: int = 1) -> None:
        super().__init__()
        c = [16 * width, 32 * width, 48 * width, 64 * width, 128 * width]
        self.features = nn.Sequential(
            _conv(1, c[0], 2),  # 32 x 64
            _conv(c[0], c[1]),
            nn.MaxPool2d(2),  # 16 x 32
            _conv(c[1], c[2]),
            _conv(c[2], c[2]),
            nn.MaxPool2d((2, 1)),  # 8 x 32
            _conv(c[2], c[3]),
            _conv(c[3], c[3]),
            nn.MaxPool2d((2, 1)),  # 4 x 32
            nn.Conv2d(c[3], c[4], (4, 1), bias=False),  # 1 x 32: each column sees the height
            nn.BatchNorm2d(c[4]),
            nn.ReLU(inplace=True),
        )
        self.sequence = nn.Sequential(
            nn.Conv1d(c[4], c[4], 5, padding=2, bias=False),
            nn.BatchNorm1d(c[4]),
            nn.ReLU(inplace=True),
            nn.Conv1d(c[4], c[4], 5, padding=2, bias=False),
            nn.BatchNorm1d(c[4]),
            nn.ReLU(inplace=True),
        )
        self.classes = nn.Conv1d(c[4], CLASSES, 1)
        self.row = nn.Linear(c[4], 2)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        columns = self.features(image).squeeze(2)  # (N, C, T)
        columns = self.sequence(columns) + columns
        logits = self.classes(columns).transpose(1, 2)  # (N, T, 37)
        row = torch.sigmoid(self.row(columns.mean(2)))  # (N, 2)
        return logits, row


class ProbsAndRow(nn.Module):
    """What the ONNX file computes: per-column class probabilities and the row."""

    def __init__(self, net: FastPlateNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, row = self.net(image)
        return logits.softmax(-1), row
