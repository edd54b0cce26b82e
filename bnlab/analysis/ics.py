"""Internal covariate shift in Santurkar et al.'s definition (2018, Sec. 2.2, Def. 2.1).

For layer i at step t, on the same batch (x_t, y_t):

    G_i  = grad_{W_i} L(W_1^t, ..., W_k^t)                        (simultaneous update)
    G'_i = grad_{W_i} L(W_1^{t+1}, ..., W_{i-1}^{t+1}, W_i^t, ..., W_k^t)

where W^{t+1} is the optimizer's actual update from G. ICS_i is ||G_i - G'_i||_2; the paper
also plots cos(G_i, G'_i) (Fig. 5). "Layers before i" are all parameters that come earlier in
the network, i.e. earlier in the flat layout (norm parameters of earlier blocks included);
G_i covers the weight (and bias) of a conv / fc / output layer.

A network with one weight layer has no layer before it, so its ICS is exactly 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bnlab.analysis._state import loss_and_grad, preserved, restore_model
from bnlab.engine.models import StackedModel

WEIGHT_LAYERS = ("conv", "fc", "out")


def weight_layer_columns(model: StackedModel) -> dict[str, tuple[int, int]]:
    """Layer name -> (start, end) of its parameters in a member's row, for weight layers."""
    spans: dict[str, tuple[int, int]] = {}
    for name, (a, b) in model.slices.items():
        layer = name.split(".")[1]  # "layers.fc2.weight" -> "fc2"
        if layer.startswith(WEIGHT_LAYERS):
            lo, hi = spans.get(layer, (a, b))
            spans[layer] = (min(lo, a), max(hi, b))
    return spans


def ics(model: StackedModel, optimizer, xb: Tensor, yb: Tensor) -> dict[str, Tensor]:
    """Per weight layer: 'ics_l2/<layer>' and 'ics_cos/<layer>', each (K,).

    Runs one optimizer step to get W^{t+1} (then restores the optimizer), and one
    forward/backward per layer; the model, optimizer and RNG are restored afterwards.
    """
    out: dict[str, Tensor] = {}
    with preserved(model, optimizer) as saved:
        _, G = loss_and_grad(model, xb, yb)  # (K, P) at W^t
        with torch.no_grad():
            model.flat_grad.copy_(G)
            optimizer.step()  # the update training would make from this batch
        theta_next = model.flat.clone()  # (K, P), W^{t+1}
        for layer, (a, b) in weight_layer_columns(model).items():
            restore_model(model, saved)  # W^t, and the running stats / noise as before
            with torch.no_grad():
                model.flat[:, :a] = theta_next[:, :a]  # layers before i moved
            model.train()
            _, G_shift = loss_and_grad(model, xb, yb)
            g, g2 = G[:, a:b], G_shift[:, a:b]  # (K, P_i) each
            out[f"ics_l2/{layer}"] = torch.linalg.vector_norm(g - g2, dim=1)
            out[f"ics_cos/{layer}"] = torch.nn.functional.cosine_similarity(g, g2, dim=1)
    return out
