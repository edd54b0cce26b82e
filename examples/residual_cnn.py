"""A researcher's own residual CNN on CIFAR-10, with bnlab: train, analyse, fold.

The model is written with plain torch.nn (a custom `forward`, residual adds, BN in the blocks
and in the downsampling shortcut), then `bnlab.convert` puts bnlab's verified BN in place of
torch's. During training the loss landscape along the gradient and the internal covariate
shift (Santurkar et al. 2018) are measured on the coming batch, without disturbing training.
At the end the model is folded for inference (`bnlab.fold_batchnorm`) and the folded
model's test accuracy is checked against the unfolded one's.

    python examples/residual_cnn.py              # 300 steps, the full 1,000-image test split
    python examples/residual_cnn.py --quick      # seconds: the form the test suite runs
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

import bnlab
from bnlab import data
from bnlab.analysis import module_ics, module_landscape


class Block(nn.Module):
    """conv-BN-relu-conv-BN, plus the input (through 1x1 conv + BN when the shape changes)."""

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

    def __init__(self, width: int = 16):
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


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--probe-every", type=int, default=100, help="steps between analyses")
    parser.add_argument("--test-images", type=int, default=1000)
    parser.add_argument("--width", type=int, default=16, help="channels of the first stage")
    parser.add_argument("--quick", action="store_true", help="6 steps of 32, width 8, 256 images")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.probe_every, args.test_images = 6, 5, 256
        args.batch_size, args.width = 32, 8

    torch.manual_seed(0)
    train, test = data.load("cifar10", "train"), data.load("cifar10", "test")
    print(f"CIFAR-10 from {train.source}")
    x, y = data.to_tensor(train)  # float32 (N, 3, 32, 32), standardized
    x_test, y_test = data.to_tensor(test, subset=data.first_n(args.test_images))

    model = bnlab.convert(
        ResNet(args.width), to="bnlab"
    )  # torch.nn.BatchNorm2d -> bnlab.BatchNorm2d
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    probes, start = [], time.perf_counter()
    for step in range(args.steps):
        idx = torch.randint(0, len(x), (args.batch_size,), generator=gen)
        batch = (x[idx], y[idx])
        if step % args.probe_every == 0:  # measured on the batch the step trains on
            found = module_landscape(model, F.cross_entropy, batch, args.lr)
            found.update(module_ics(model, F.cross_entropy, batch, opt))
            probes.append({"step": step, **{k: v.item() for k, v in found.items()}})
            print(
                f"step {step:4d}  loss {found['loss']:.3f}  "
                f"loss variation {found['loss_variation']:.3f}  "
                f"beta-smoothness {found['beta_smoothness']:.2f}  "
                f"ICS(fc) {found['ics_l2/fc']:.4f}"
            )
        model.train()
        loss = F.cross_entropy(model(batch[0]), batch[1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start

    model.eval()
    folded, report = bnlab.fold_batchnorm(model, return_report=True)
    acc, acc_folded = accuracy(model, x_test, y_test), accuracy(folded, x_test, y_test)
    with torch.no_grad():
        maxdiff = (folded(x_test) - model(x_test)).abs().max().item()
    print(
        f"{args.steps} steps in {seconds:.1f} s; test accuracy on {len(y_test)} images: "
        f"{acc:.4f} (BN), {acc_folded:.4f} (folded: {len(report.folded)} BN folded, "
        f"{len(report.left)} left); max |logit difference| {maxdiff:.2e}"
    )
    return {
        "probes": probes,
        "accuracy": acc,
        "accuracy_folded": acc_folded,
        "max_logit_diff": maxdiff,
        "report": report,
        "folded": folded,
    }


if __name__ == "__main__":
    main()
