"""Does GroupNorm beat BN at a batch of 8 on a small ResNet? A study in bnlab.study.

A small residual CNN (torch.nn, BN in every block and shortcut) on the CIFAR-10 images
present (the official set, or the 5,000-image subset shipped beside the repository), with
BN, GroupNorm (4 groups) or no normalization, at batch 8 and batch 128: six variants, each
trained over 3 seeds as one vmapped computation. The claims are declared here; their
decision rules are recorded before the first step, and `bnlab report` decides them with
paired one-sided t-tests over seeds and Holm's correction over the study's claims.

    bnlab study examples/study_resnet_norms.py --out results/study-resnet     # a few minutes
    bnlab study examples/study_resnet_norms.py --out results/study-resnet --resume   # after a crash
    bnlab report results/study-resnet

The steps are sized for a few minutes on 2 CPU cores (150 steps: a batch-128 model sees
about 4 epochs of the 4,000-image training split, a batch-8 model a quarter of one), so the
verdicts are those of short training; for a real answer run more, e.g. `--seeds 10 --steps
3000` (the claims stay as declared).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from bnlab.study import Claim, Optimizer, Study, Variant, replace_norm


class Block(nn.Module):
    """conv-BN-relu-conv-BN, plus the input (through a 1x1 conv + BN when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """(B, 3, 32, 32) -> (B, 10): stem, three blocks (two downsampling), pool, linear."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.blocks = nn.Sequential(
            Block(width, width, 1), Block(width, 2 * width, 2), Block(2 * width, 4 * width, 2)
        )
        self.fc = nn.Linear(4 * width, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.stem(x))))  # (B, 4w, 8, 8)
        return self.fc(x.mean((2, 3)))  # (B, 10)


GN = replace_norm("group", groups=4)
NONE = replace_norm("none")

study = Study(
    name="resnet-norms",
    model=ResNet,
    data="cifar10",
    variants={
        "bn-b8": Variant(batch_size=8, lr=0.01),
        "gn-b8": Variant(model=GN, batch_size=8, lr=0.01),
        "none-b8": Variant(model=NONE, batch_size=8, lr=0.01),
        "bn-b128": Variant(batch_size=128),
        "gn-b128": Variant(model=GN, batch_size=128),
        "none-b128": Variant(model=NONE, batch_size=128),
    },
    # lr 0.16 at batch 128 and 0.01 at batch 8: the same lr per example (Goyal et al. 2017)
    optimizer=Optimizer("sgd", lr=0.16, momentum=0.9, weight_decay=5e-4, schedule="cosine"),
    steps=150,
    seeds=3,
    checkpoint_every=50,
    eval_every=50,
    claims=[
        Claim("test_accuracy", "bn-b128", than="none-b128", direction="higher", margin=0.01),
        Claim("test_accuracy", "gn-b8", than="bn-b8", direction="higher", margin=0.01),
        Claim("train_loss", "bn-b128", than="none-b128", direction="lower"),
    ],
)
