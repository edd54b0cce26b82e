"""Random crop with padding and horizontal flip, as one batched gather (no per-sample Python).

The CIFAR-10 protocol in the seeds: RandomCrop(32, padding=4) + RandomHorizontalFlip().
Offsets and flips are drawn from a caller-owned torch.Generator, so each model of a
stack has its own deterministic augmentation stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Augment:
    """crop_padding: pixels of padding on each side before a random HxW crop (0: no crop).
    flip: mirror left-right with probability 1/2. fill: the padding value, a float or one
    per channel; use `pixel_zero(name, transform)` for torchvision's black padding.
    """

    crop_padding: int = 4
    flip: bool = True
    fill: float | tuple[float, ...] = 0.0

    def __post_init__(self) -> None:
        p = self.crop_padding
        if isinstance(p, bool) or not isinstance(p, int) or p < 0:
            raise ValueError(f"crop_padding={p!r}; expected an int >= 0")

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Per-sample (oy, ox, flip) for n samples: offsets in [0, 2p], flip bool; CPU."""
        p = self.crop_padding
        oy = (
            torch.randint(0, 2 * p + 1, (n,), generator=generator)
            if p
            else torch.zeros(n, dtype=torch.long)
        )
        ox = (
            torch.randint(0, 2 * p + 1, (n,), generator=generator)
            if p
            else torch.zeros(n, dtype=torch.long)
        )
        flip = (
            torch.rand(n, generator=generator) < 0.5
            if self.flip
            else torch.zeros(n, dtype=torch.bool)
        )
        return oy, ox, flip

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """x (B, C, H, W) -> augmented (B, C, H, W), draws taken from `generator`."""
        oy, ox, flip = self.draw(x.shape[0], generator)
        return crop_flip(x, oy, ox, flip, self.crop_padding, self.fill)


def crop_flip(
    x: torch.Tensor,
    oy: torch.Tensor,
    ox: torch.Tensor,
    flip: torch.Tensor,
    padding: int,
    fill: float | tuple[float, ...] = 0.0,
) -> torch.Tensor:
    """Sample i = the HxW window at (oy[i], ox[i]) of x[i] padded by `padding`, mirrored if flip[i].

    x (B, C, H, W); oy, ox (B,) ints in [0, 2*padding]; flip (B,) bool.
    """
    b, c, h, w = x.shape
    p = padding
    fill_c = torch.as_tensor(fill, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    padded = fill_c.expand(b, c, h + 2 * p, w + 2 * p).clone()  # (B, C, H+2p, W+2p)
    padded[:, :, p : p + h, p : p + w] = x
    dev = x.device
    rows = oy.to(dev)[:, None] + torch.arange(h, device=dev)  # (B, H)
    cols = ox.to(dev)[:, None] + torch.arange(w, device=dev)  # (B, W)
    # A flip is the same window read right to left: fold it into the column index.
    cols = torch.where(flip.to(dev)[:, None], cols.flip(1), cols)
    n = torch.arange(b, device=dev)[:, None, None]  # (B, 1, 1)
    # Advanced indices split by the channel slice move to the front: (B, H, W, C).
    out = padded[n, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)
