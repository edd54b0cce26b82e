"""K members of any model trained as one computation with torch.func.

The members' parameters are stacked (`torch.func.stack_module_state`) into one flat (K, P)
buffer, each parameter a (K, ...) view of it, as in the engine's `StackedModel`; buffers
(BN's running statistics) are stacked (K, ...) tensors. A step is

    logits = vmap(functional_call(template, (params, buffers), x_k))   # one graph
    losses = cross_entropy(logits) per member                          # (K,)
    losses.sum().backward()        # d(sum)/d(theta_k) = d(loss_k)/d(theta_k): members apart
    optimizer.step()               # the engine's StackedSGD / StackedAdam on (K, P)

with BN in its functional-state form (`functional_state`), whose new running statistics come
back from the vmapped call and replace the stacked buffers. The backward is plain autograd
over the stacked graph rather than `vmap(grad(...))`: the gradients land in the flat (K, P)
buffer that the optimizer updates in one op, and BN's backward is bnlab's hand-written one,
over all members at once.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from bnlab.engine.allocator import keep_freed_memory
from bnlab.engine.config import OptimConfig
from bnlab.engine.optim import make_optimizer
from bnlab.study.functional_state import state_updates, to_functional
from bnlab.study.members import layer_groups, trainable, vmap_blocker
from bnlab.study.spec import Optimizer
from bnlab.study.vmap_group_norm import stack_group_norms

__all__ = ["VmappedMembers", "members_last", "stacked_loss"]

EVAL_MEMBER_IMAGES = 2048  # member-images per evaluation chunk: bounds its memory


def members_last(xb: Tensor) -> Tensor:
    """Images (K, B, C, H, W) laid out as (B, H, W, K, C) in memory, same shape and values.

    Under vmap a convolution of K members is one grouped convolution over the (B, K*C, H,
    W) view of its input; with this layout that view is channels-last, the layout in which
    the grouped convolution is fast on the CPU (as the engine's `StackedConv2d` runs), and
    every later layer keeps it. Used for models with Conv2d layers; other inputs are
    returned as they are.
    """
    if xb.dim() != 5:
        return xb
    return xb.permute(1, 3, 4, 0, 2).contiguous().permute(3, 0, 4, 1, 2)  # (K, B, C, H, W)


def stacked_loss(logits: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
    """Each member's mean cross-entropy and accuracy, (K,) each, from logits (K, B, classes)
    and labels (K, B): one loss over the K*B rows, outside vmap, as the engine computes it
    (under vmap, cross-entropy runs as a Python decomposition)."""
    K, B, C = logits.shape
    loss = F.cross_entropy(logits.reshape(K * B, C), yb.reshape(K * B), reduction="none")
    correct = logits.detach().argmax(-1) == yb  # (K, B)
    loss = loss.view(K, B).mean(1)  # (K,)
    return loss, correct.to(loss.dtype).mean(1)


class VmappedMembers:
    """The K models of one variant as one vmapped computation (see the module docstring)."""

    mode = "vmapped"

    def __init__(self, models: list[nn.Module], optimizer: Optimizer, lr: float, device):
        keep_freed_memory()  # K members' activations: reuse their memory between steps
        self.members = len(models)
        self.reference = copy.deepcopy(models[0])  # plain form: `member(k)` loads into it
        functional = [copy.deepcopy(m) for m in models]
        for m in functional:
            to_functional(m)  # BN: running statistics in and out
            stack_group_norms(m)  # GroupNorm: one op for every member
        self.template = functional[0]
        self.blocker = vmap_blocker(self.template)
        self._convolutional = any(isinstance(m, nn.Conv2d) for m in self.template.modules())
        # untying shared weights costs every call; most models share none
        named = list(self.template.named_parameters(remove_duplicate=False))
        self._tied = len(named) != len({id(p) for _, p in named})
        params, buffers = stack_module_state(functional)  # name -> (K, ...)
        names = [n for n, _ in trainable(self.template)]
        frozen = {n: v.detach() for n, v in params.items() if n not in names}
        # frozen parameters travel with the buffers: stacked, passed in, never trained
        self.buffers = {n: b.to(device) for n, b in {**buffers, **frozen}.items()}
        self._flatten([(n, params[n]) for n in names], device)
        self.layer_names, onehot = layer_groups(self.template)
        self._onehot = onehot.to(device, self.flat.dtype)
        cfg = OptimConfig(optimizer.name, lr, (), optimizer.momentum, optimizer.weight_decay)
        self.optimizer = make_optimizer(self.flat, self.flat_grad, [lr] * self.members, cfg)
        self._train = vmap(self._member_step, in_dims=(0, 0, 0))
        self._eval = vmap(self._member_logits, in_dims=(0, 0, None))

    def _flatten(self, params: list[tuple[str, Tensor]], device) -> None:
        """Every trainable parameter as a (K, ...) view of self.flat (K, P); grads likewise.

        A Linear layer's weight (out, in) is kept (in, out) in memory and handed to the model
        transposed (`stacked_params`): x @ W.T is then a bmm with the stored matrix, whose
        gradient x.T @ dy arrives in the stored layout, as in the engine's `StackedLinear`.
        Stored (out, in), every step would add a transposed gradient into it.
        """
        linear = {
            f"{n}.weight" for n, m in self.template.named_modules() if isinstance(m, nn.Linear)
        }
        total = sum(p[0].numel() for _, p in params)
        self.flat = torch.zeros(self.members, total, dtype=params[0][1].dtype, device=device)
        self.flat_grad = torch.zeros_like(self.flat)  # (K, P)
        self.params: dict[str, nn.Parameter] = {}
        self._ranges: list[tuple[int, int]] = []
        self._transposed = set()
        start = 0
        for name, stacked in params:
            end = start + stacked[0].numel()
            if name in linear:
                stacked = stacked.transpose(1, 2)  # (K, out, in) -> (K, in, out)
                self._transposed.add(name)
            view = self.flat[:, start:end].view(stacked.shape)  # (K, ...)
            view.copy_(stacked.detach())
            param = nn.Parameter(view)
            param.grad = self.flat_grad[:, start:end].view(stacked.shape)
            self.params[name] = param
            self._ranges.append((start, end))
            start = end

    def stacked_params(self) -> dict[str, Tensor]:
        """name -> (K, ...) as the model sees them (Linear weights transposed back: views)."""
        return {n: self._model_layout(n, p) for n, p in self.params.items()}

    def stacked_grads(self) -> dict[str, Tensor]:
        """name -> (K, ...) gradients of the last step, in the model's layout (views)."""
        return {n: self._model_layout(n, p.grad) for n, p in self.params.items()}

    def _model_layout(self, name: str, t: Tensor) -> Tensor:
        return t.transpose(1, 2) if name in self._transposed else t

    def _member_step(self, params, buffers, x):
        """One member's logits and its new running statistics (under vmap)."""
        with state_updates() as new:
            logits = functional_call(self.template, (params, buffers), x, tie_weights=self._tied)
        return logits, dict(new)

    def forward(self, xb: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Every member on its own batch in training mode: logits (K, B, classes) and the new
        running statistics (name -> (K, ...)); nothing is updated."""
        if self._convolutional:
            xb = members_last(xb)
        return self._train(self.stacked_params(), self.buffers, xb)

    def _member_logits(self, params, buffers, x):
        return functional_call(self.template, (params, buffers), x, tie_weights=self._tied)

    def step(self, xb: Tensor, yb: Tensor, lr: float) -> tuple[Tensor, Tensor]:
        """One optimizer step of every member on its own batch: xb (K, B, ...), yb (K, B).
        Returns the members' losses and accuracies, (K,) each, before the update."""
        self.flat_grad.zero_()
        logits, new = self.forward(xb)
        loss, acc = stacked_loss(logits, yb)
        loss.sum().backward()  # d(sum)/d(theta_k) = d(loss_k)/d(theta_k): members apart
        self.optimizer.lr.fill_(lr)
        self.optimizer.step()
        self.buffers.update(new)
        return loss.detach(), acc

    def layer_sq_norms(self) -> Tensor:
        """Squared l2 norm of each member's last gradient per layer: (K, L)."""
        per_param = [
            torch.linalg.vector_norm(self.flat_grad[:, a:b], dim=1)  # (K,)
            for a, b in self._ranges
        ]
        return torch.mm(torch.stack(per_param, 1).square_(), self._onehot)  # (K, L)

    @torch.no_grad()
    def evaluate(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Every member's loss and accuracy on the same (N, ...) examples in eval mode
        (running statistics), in chunks: (K,), (K,)."""
        self.template.eval()
        loss_sum = torch.zeros(self.members, dtype=self.flat.dtype, device=self.flat.device)
        correct = torch.zeros_like(loss_sum)
        chunk = max(1, EVAL_MEMBER_IMAGES // self.members)
        try:
            for i in range(0, len(y), chunk):
                xc = x[i : i + chunk]
                if self._convolutional and xc.dim() == 4:  # as the stacked convolutions run
                    xc = xc.contiguous(memory_format=torch.channels_last)
                logits = self._eval(self.stacked_params(), self.buffers, xc)  # (K, n, classes)
                target = y[i : i + chunk].expand(self.members, -1)  # (K, n)
                loss = torch.nn.functional.cross_entropy(
                    logits.transpose(1, 2), target, reduction="none"
                )  # (K, n)
                loss_sum += loss.sum(1)
                correct += (logits.argmax(-1) == target).to(correct.dtype).sum(1)
        finally:
            self.template.train()
        return loss_sum / len(y), correct / len(y)

    @torch.no_grad()
    def member(self, k: int) -> nn.Module:
        """Member k as a plain model (its own layers, not the functional ones), a copy."""
        model = copy.deepcopy(self.reference).to(self.flat.device)
        stacked = {**self.stacked_params(), **self.buffers}
        for name, t in (*model.named_parameters(), *model.named_buffers()):
            t.copy_(stacked[name][k])
        return model

    def state_dict(self) -> dict:
        return {
            "flat": self.flat.clone(),
            "buffers": {n: b.clone() for n, b in self.buffers.items()},
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.flat.copy_(state["flat"])
        self.buffers = {n: b.to(self.flat.device) for n, b in state["buffers"].items()}
        self.optimizer.load_state_dict(state["optimizer"])
