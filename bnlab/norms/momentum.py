"""The two meanings of BN's `momentum`, and conversions between them.

PyTorch (`torch.nn.BatchNorm*`, and bnlab's): momentum is the weight of the *new* batch,

    running = (1 - momentum) * running + momentum * batch          default 0.1

Keras/TensorFlow (`BatchNormalization(momentum=...)`, also `renorm_momentum`) and Flax
(`nn.BatchNorm(momentum=...)`): momentum is the *decay* of the old value,

    moving = momentum * moving + (1 - momentum) * batch            default 0.99

so the same update is momentum_torch = 1 - momentum_keras. The defaults are not the same
update: torch's 0.1 is Keras's 0.9, and Keras's 0.99 is torch's 0.01 (ten times slower).
What a conversion does not carry over: torch adds Bessel's correction to the running
variance (m/(m-1)), Keras and Flax keep the biased one; the default eps differs (torch 1e-5,
Keras 1e-3, Flax 1e-5); torch's `momentum=None` (a cumulative average) has no Keras or Flax
counterpart.
"""

from __future__ import annotations

__all__ = ["flax_to_torch", "keras_to_torch", "torch_to_flax", "torch_to_keras"]


def _check(momentum: float, name: str) -> float:
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)):
        raise TypeError(
            f"{name}: momentum must be a float in [0, 1], got {momentum!r}"
            + (
                " (torch's None, a cumulative average, has no decay form)"
                if momentum is None
                else ""
            )
        )
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{name}: momentum must be in [0, 1], got {momentum!r}")
    return float(momentum)


def torch_to_keras(momentum: float) -> float:
    """Keras/TF `momentum` (decay of the old value) for torch's `momentum` (weight of the
    new batch): 1 - momentum. torch's default 0.1 -> 0.9."""
    return 1.0 - _check(momentum, "torch_to_keras")


def keras_to_torch(momentum: float) -> float:
    """torch's `momentum` for a Keras/TF `momentum` or `renorm_momentum`: 1 - momentum.
    Keras's default 0.99 -> 0.01."""
    return 1.0 - _check(momentum, "keras_to_torch")


def torch_to_flax(momentum: float) -> float:
    """Flax `nn.BatchNorm(momentum=...)` (decay, as Keras) for torch's: 1 - momentum."""
    return 1.0 - _check(momentum, "torch_to_flax")


def flax_to_torch(momentum: float) -> float:
    """torch's `momentum` for Flax's `nn.BatchNorm(momentum=...)`: 1 - momentum."""
    return 1.0 - _check(momentum, "flax_to_torch")
