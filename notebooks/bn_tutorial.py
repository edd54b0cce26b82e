# ---
# jupyter:
#   jupytext:
#     formats: py:percent,ipynb
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Batch Normalization, measured: a tutorial with bnlab
#
# Every claim in this notebook is measured live by [bnlab](../README.md) on your CPU, in a
# few minutes: nothing below is a number copied from a paper or a blog. Where a claim cannot
# be measured here, the notebook says so and why. Three rules hold throughout:
#
# - an effect is shown against a **control that trains**: its accuracy is printed next to a
#   stated floor, and the notebook stops if it falls short (a baseline stuck at its starting
#   plateau would make any method look good);
# - beside each effect measured here in seconds stands the **lab's full-scale number** for
#   the same claim (`bnlab reproduce`: full training, several seeds, its n printed with
#   it), read from the published results, or a line saying it is not yet published;
# - after each lesson that evaluates models, an **invariant cell** asserts that the
#   evaluation was honest: in eval mode the accuracy does not depend on the evaluation batch
#   size, and no running statistic moved.
#
# **Contents**
#
# 1. Objectives and set-up
# 2. The concept and the math (Algorithms 1 and 2, gamma and beta, BN for conv layers)
# 3. Implementation deep dive (`bnlab.reference`: forward, staged and fused backward,
#    autograd, finite differences)
# 4. Experiments and pictures (distributions per unit, train vs eval, MNIST over seeds,
#    Ioffe & Szegedy Fig. 1(b, c), per-layer health over training)
# 5. Pitfalls, each shown live: the wrong way, then the right way
# 6. Practical application (a tabular task, a small CNN, folding BN for inference)
# 7. Performance (bnlab vs `torch.nn` vs NumPy)
# 8. Why does BN help? The debate (internal covariate shift vs smoothing), and the claims table
# 9. Exercises that check themselves (solutions: [bn_solutions.ipynb](bn_solutions.ipynb))
# 10. FAQ and summary

# %% [markdown]
# ## 1. Objectives and set-up
#
# After this notebook you will be able to:
#
# - write Batch Normalization's forward and backward pass from the equations, and check them
#   against autograd and finite differences;
# - explain what BN does differently in training and in evaluation, and why running
#   statistics exist;
# - recognise the common BN bugs (a missing `model.eval()`, tiny batches, momentum
#   conventions, redundant biases, stale statistics after a domain shift) and fix them;
# - fold BN into the preceding layer for inference;
# - read the two explanations of *why* BN helps, and judge claims about BN by their
#   measured effect, n and confidence interval, against a control that trains;
# - read a network's health over training (saturated units, gradient and update sizes per
#   layer) with and without BN.
#
# **Set-up.** From the repository root, `make notebook` installs `bnlab[notebook]` into the
# project's `.venv`, fetches MNIST into the bnlab cache (the same data `make test` uses) and
# executes this notebook. Nothing here needs a GPU or the network.

# %%
import copy
import inspect
import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

import bnlab
from bnlab import data, exercises, reference
from bnlab.analysis import AnalysisProbe, LayerHealth, ProbeConfig
from bnlab.engine import HookConfig, RunContext, Store, get_preset, train
from bnlab.report import (
    Estimate,
    diff_ci,
    format_estimate,
    highest_trainable,
    loss_smoothness,
    mean_ci,
    mean_ci_band,
    percentile_drift,
    steps_to_accuracy,
)


def pct(values, digits=1):
    """Mean of accuracies (fractions) over seeds, as a percentage with its 95% CI and n."""
    return format_estimate(mean_ci(values), digits, 100, "%")


def points(est, digits=1):
    """An accuracy difference (an Estimate of fractions) in percentage points, with CI and n."""
    return format_estimate(est, digits, 100, " points")


def median_ms(fn, repeats=50):
    """Median wall time of fn() over `repeats` calls, in milliseconds."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


NOTEBOOK_START = time.perf_counter()
WORK = tempfile.mkdtemp(prefix="bn_tutorial_")  # engine results; removed at the end
# One thread: these models are small, and on a busy machine (CI runs other jobs beside this
# notebook) two threads per process made the engine run about 12x slower in wall time, not
# faster (measured on the 2-core development machine under load).
torch.set_num_threads(1)
torch.manual_seed(0)
rng = np.random.default_rng(0)
plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3})
print(f"bnlab {bnlab.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads")

# %% [markdown]
# **Controls that train.** `control_trains` prints a control's accuracy next to its floor
# and stops the notebook if any seed falls short: an effect measured against a network that
# has not started learning says nothing about BN.
#
# **The lab's full-scale numbers.** `lab_line(claim, setting)` reads the project's published
# result for one claim in one setting from `docs/results/verdicts.json`, the machine-readable
# file the report publishes beside `report.md` (`bnlab reproduce`, full training).
# Until that file exists the line says "not yet published": no lab number is typed into
# this notebook by hand.


# %%
def control_trains(name, accs, floor):
    """Print a control's accuracy beside its floor; stop unless every seed reaches it."""
    accs = np.asarray(accs, dtype=float)
    met = bool((accs >= floor).all())
    print(
        f"control, {name}: {pct(accs)}; floor {floor:.0%} in every seed: "
        + ("met" if met else "NOT MET")
    )
    assert met, (
        f"the control ({name}) does not train: accuracy per seed {np.round(100 * accs, 1)}%, "
        f"floor {floor:.0%}; an effect measured against it would be meaningless"
    )


def _results_file():
    for folder in (Path.cwd(), *Path.cwd().parents):  # the notebook runs in notebooks/
        if (folder / "docs" / "results").is_dir():
            return folder / "docs" / "results" / "verdicts.json"
    return Path.cwd() / "docs" / "results" / "verdicts.json"


VERDICTS = _results_file()


def lab_result(claim, setting):
    """The lab's published result for (claim id, setting), or why there is none."""
    if not VERDICTS.exists():
        return "not yet published (docs/results/verdicts.json does not exist yet)"
    rows = json.loads(VERDICTS.read_text())
    found = [r for r in rows if r["claim"] == claim and r["setting"] == setting]
    if not found:
        return (
            "no published row yet (docs/results/report.md lists the experiments not yet "
            "re-run at full scale)"
        )
    r = found[0]
    if r["effect"] is None or r["low"] is None:
        return f"{r['verdict']} ({r['experiment']}, n={r['n']})"
    size = max(abs(r["effect"]), abs(r["high"] - r["low"]))
    digits = 0 if size >= 100 else 2 if size >= 0.1 else 3
    est = Estimate(r["effect"], r["low"], r["high"], r["n"], "published")
    unit = f" {r['unit'].strip()}" if r["unit"].strip() else ""
    return f"{format_estimate(est, digits, 1, unit)}: {r['verdict']} ({r['experiment']})"


def lab_line(claim, setting):
    """One printable line: the lab's full-scale number for the claim in that setting."""
    if claim is None:
        return f"  lab, full scale [{setting}]: shown as a diagnostic (post hoc), not a claim"
    return f"  lab, full scale [{claim} | {setting}]: {lab_result(claim, setting)}"


# %% [markdown]
# ## 2. The concept and the math
#
# **Why normalize?** A layer's input distribution changes as the layers before it learn.
# Ioffe & Szegedy (2015) called this *internal covariate shift* and proposed to fix the mean
# and variance of each unit's input with statistics of the current mini-batch. Whether that
# is really why BN helps is the debate of Section 8.
#
# **Algorithm 1 (training).** For a mini-batch $\mathcal{B} = \{x_1, \dots, x_m\}$ of one
# unit's values, with learned $\gamma, \beta$:
#
# $$\mu_\mathcal{B} = \frac{1}{m}\sum_{i=1}^m x_i, \qquad
#   \sigma^2_\mathcal{B} = \frac{1}{m}\sum_{i=1}^m (x_i - \mu_\mathcal{B})^2, \qquad
#   \hat{x}_i = \frac{x_i - \mu_\mathcal{B}}{\sqrt{\sigma^2_\mathcal{B} + \epsilon}}, \qquad
#   y_i = \gamma \hat{x}_i + \beta.$$
#
# **Algorithm 2 (inference).** Replace the batch statistics by population estimates, so the
# output of one example no longer depends on the others:
#
# $$\mathrm{E}[x] = \mathrm{E}_\mathcal{B}[\mu_\mathcal{B}], \qquad
#   \mathrm{Var}[x] = \frac{m}{m-1}\,\mathrm{E}_\mathcal{B}[\sigma^2_\mathcal{B}], \qquad
#   y = \frac{\gamma}{\sqrt{\mathrm{Var}[x] + \epsilon}}\, x
#       + \Big(\beta - \frac{\gamma\, \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}}\Big).$$
#
# Frameworks estimate the expectations with an exponential moving average
# (`running_mean`, `running_var`); the $m/(m-1)$ is Bessel's correction.
#
# **What gamma and beta restore.** Normalizing alone would force every unit to mean 0 and
# variance 1 (for a sigmoid, its near-linear region). With
# $\gamma = \sqrt{\sigma^2_\mathcal{B} + \epsilon}$ and $\beta = \mu_\mathcal{B}$ the layer is
# the identity, so BN never removes what the network could represent. The cell checks it.

# %%
x = rng.normal(5.0, 3.0, size=(64, 4))  # (N, C): 4 units, mean 5, std 3
y, cache = reference.forward(x, gamma=np.ones(4), beta=np.zeros(4))
print("normalized:  mean per unit", np.round(y.mean(0), 6), " var per unit", np.round(y.var(0), 4))
gamma_id = np.sqrt(cache.var.ravel() + cache.eps)
beta_id = cache.mu.ravel()
y_id, _ = reference.forward(x, gamma_id, beta_id)
print(f"gamma = sqrt(var + eps), beta = mu  ->  max |y - x| = {np.abs(y_id - x).max():.2e}")

# %% [markdown]
# **BN for convolutional layers.** A feature map's statistics are shared by every position,
# so BN normalizes per channel over the batch *and* the spatial axes: with input
# $(N, C, H, W)$ each channel has $m = N \cdot H \cdot W$ values. One $\gamma, \beta$ per
# channel. `bnlab.BatchNorm2d` is a drop-in replacement for `torch.nn.BatchNorm2d`:

# %%
x4 = torch.randn(8, 3, 5, 5) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1) + 4  # (N, C, H, W)
ours, theirs = bnlab.BatchNorm2d(3), nn.BatchNorm2d(3)
y_ours, y_theirs = ours(x4), theirs(x4)
print("per-channel mean over (N, H, W):", y_ours.mean(dim=(0, 2, 3)).detach().numpy().round(6))
print(
    "per-channel var over (N, H, W): ",
    y_ours.var(dim=(0, 2, 3), unbiased=False).detach().numpy().round(4),
)
print(f"max |bnlab - torch.nn| output: {(y_ours - y_theirs).abs().max().item():.2e}")
print(
    "max |bnlab - torch.nn| running_var:",
    f"{(ours.running_var - theirs.running_var).abs().max().item():.2e}",
)

# %% [markdown]
# ## 3. Implementation deep dive
#
# `bnlab.reference` is BN in NumPy, written to be read next to Algorithm 1. The forward pass:

# %%
print(inspect.getsource(reference.forward).split('"""')[2])

# %% [markdown]
# **The staged backward.** The chain rule, one equation at a time and in reverse order
# (the approach of Karpathy's *makemore part 4*). Each gradient is named after its forward
# quantity with a `d` in front. We compute every intermediate by hand and compare it with
# PyTorch autograd on the same graph, using a small `cmp` helper.


# %%
def cmp(name, ours, ref):
    """Compare a hand-computed gradient with autograd's: exact, close, max difference."""
    ref = ref.detach().numpy()
    exact = np.array_equal(ours, ref)
    close = np.allclose(ours, ref, rtol=1e-10, atol=1e-12)
    print(
        f"{name:10s} exact: {exact!s:5}  close: {close!s:5}  "
        f"maxdiff: {np.abs(ours - ref).max():.1e}"
    )


m, C, eps = 32, 5, 1e-5
x_np = rng.normal(2.0, 3.0, size=(m, C))  # float64 throughout
gamma_np, beta_np = rng.uniform(0.5, 1.5, C), rng.normal(size=C)
dy_np = rng.normal(size=(m, C))  # an upstream gradient dL/dy

# the forward pass in torch, keeping every intermediate
xt = torch.tensor(x_np, requires_grad=True)
gt, bt = torch.tensor(gamma_np, requires_grad=True), torch.tensor(beta_np, requires_grad=True)
mu_t = xt.mean(0, keepdim=True)
diff_t = xt - mu_t
var_t = (diff_t**2).mean(0, keepdim=True)  # biased: 1/m
inv_std_t = (var_t + eps) ** -0.5
x_hat_t = diff_t * inv_std_t
y_t = gt * x_hat_t + bt
for t in (mu_t, diff_t, var_t, inv_std_t, x_hat_t):
    t.retain_grad()
y_t.backward(torch.tensor(dy_np))

# the same by hand, in NumPy, in reverse order
mu = x_np.mean(0, keepdims=True)
diff = x_np - mu
var = (diff**2).mean(0, keepdims=True)
inv_std = (var + eps) ** -0.5
x_hat = diff * inv_std
dbeta = dy_np.sum(0)  # y = gamma * x_hat + beta
dgamma = (dy_np * x_hat).sum(0)
dx_hat = dy_np * gamma_np
dinv_std = (dx_hat * diff).sum(0, keepdims=True)  # x_hat = diff * inv_std
ddiff = dx_hat * inv_std
dvar = -0.5 * (var + eps) ** -1.5 * dinv_std  # inv_std = (var + eps)^(-1/2)
ddiff = ddiff + 2.0 * diff / m * dvar  # var = 1/m sum diff^2 (second path into diff)
dmu = -ddiff.sum(0, keepdims=True)  # diff = x - mu
dx = ddiff + dmu / m  # mu = 1/m sum x (second path into x)

cmp("dbeta", dbeta, bt.grad)
cmp("dgamma", dgamma, gt.grad)
cmp("dx_hat", dx_hat, x_hat_t.grad)
cmp("dinv_std", dinv_std, inv_std_t.grad)
cmp("dvar", dvar, var_t.grad)
cmp("ddiff", ddiff, diff_t.grad)
cmp("dmu", dmu, mu_t.grad)
cmp("dx", dx, xt.grad)

# %% [markdown]
# Two subtle points. `dmu` gets nothing from `dvar`: the variance's derivative with respect
# to the mean is $\frac{2}{m}\sum_i (x_i - \mu) = 0$. And the variance is the *biased*
# $1/m$ one in training; Bessel's $1/(m-1)$ appears only in the running estimate.
#
# **The fused backward.** Substituting `dvar` and `dmu` into `dx` gives one expression:
#
# $$\frac{\partial L}{\partial x_i} = \frac{\gamma}{\sqrt{\sigma^2_\mathcal{B} + \epsilon}}
#   \Big(\frac{\partial L}{\partial y_i} - \frac{1}{m}\sum_j \frac{\partial L}{\partial y_j}
#   - \hat{x}_i\, \frac{1}{m}\sum_j \frac{\partial L}{\partial y_j}\hat{x}_j\Big)$$
#
# `bnlab.reference` keeps both versions; both agree with autograd:

# %%
_, cache = reference.forward(x_np, gamma_np, beta_np, eps)
for name, fn in (("staged", reference.backward_staged), ("fused", reference.backward)):
    dx_r, dgamma_r, dbeta_r = fn(dy_np, cache)
    cmp(f"dx {name}", dx_r, xt.grad)
    cmp(f"dgam {name}", dgamma_r, gt.grad)

# %% [markdown]
# **Finite differences in float64.** Autograd could share a mistake with us (we wrote the
# graph), so check against the definition of a derivative: for $L = \sum_i y_i \cdot
# \mathrm{dy}_i$, $\partial L / \partial x_{ij} \approx (L(x + h e_{ij}) - L(x - h e_{ij})) / 2h$.


# %%
def loss_of(x):
    y, _ = reference.forward(x, gamma_np, beta_np, eps)
    return float((y * dy_np).sum())


h = 1e-6
dx_fd = np.zeros_like(x_np)
for i in range(m):
    for j in range(C):
        e = np.zeros_like(x_np)
        e[i, j] = h
        dx_fd[i, j] = (loss_of(x_np + e) - loss_of(x_np - e)) / (2 * h)
dx_fused, _, _ = reference.backward(dy_np, cache)
rel = np.abs(dx_fused - dx_fd).max() / np.abs(dx_fd).max()
print(f"fused backward vs central differences (h={h:g}): max relative error {rel:.1e}")

# %% [markdown]
# bnlab's PyTorch op `bnlab.batch_norm` has the same hand-derived backward inside an
# `autograd.Function` (and a hand-written double backward). `torch.autograd.gradcheck` and
# `gradgradcheck` compare both with finite differences:

# %%
xg = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
wg = torch.rand(3, dtype=torch.float64, requires_grad=True)
bg = torch.randn(3, dtype=torch.float64, requires_grad=True)


def op(x, w, b):
    return bnlab.batch_norm(x, None, None, w, b, training=True)


print("gradcheck:", torch.autograd.gradcheck(op, (xg, wg, bg)))
print("gradgradcheck:", torch.autograd.gradgradcheck(op, (xg, wg, bg)))


# %% [markdown]
# **How much does fusing buy?** CS231n's BN assignment asks this of its students: time the
# staged backward (one intermediate per equation) against the fused one on the same cache.
# Float64, (256, 1024), median of 30 calls each, in this process:

# %%
x_big = rng.normal(size=(256, 1024))  # (m, C)
dy_big = rng.normal(size=x_big.shape)
_, cache_big = reference.forward(x_big, np.ones(1024), np.zeros(1024))
t_staged = median_ms(lambda: reference.backward_staged(dy_big, cache_big), 30)
t_fused = median_ms(lambda: reference.backward(dy_big, cache_big), 30)
print(
    f"staged backward {t_staged:.2f} ms, fused {t_fused:.2f} ms: "
    f"the staged one takes {t_staged / t_fused:.2f}x the fused one's time"
)

# %% [markdown]
# ## 4. Experiments and pictures
#
# ### 4.1 Pre- vs post-normalization distributions, unit by unit
#
# An MLP with three hidden layers of 100 sigmoid units (Ioffe & Szegedy's MNIST net), with
# `bnlab.BatchNorm1d` after each Linear layer, on a batch of 512 real MNIST digits. BN works
# unit by unit, so the picture is unit by unit: each box is one unit's values over the 512
# examples (box: 25th-75th percentile, whiskers: 5th-95th). Before BN every unit has its own
# offset and spread, whatever the weights give it; after BN each unit has mean 0 and
# variance 1 over the batch. (One histogram of all units pooled together would hide exactly
# those per-unit offsets, which are what BN removes.)

# %%
mnist_train = data.load("mnist", "train")
mnist_x, mnist_y = data.to_tensor(mnist_train, "binarize", data.first_n(512))  # (512, 1, 28, 28)
mnist_x = mnist_x.flatten(1)  # (512, 784)


def ioffe_mlp(bn: bool, init_std: float = 0.1) -> nn.Sequential:
    """3 x 100 sigmoid (Ioffe & Szegedy 2015, Sec. 4.1); weights N(0, init_std^2), biases 0."""
    layers, width = [], 784
    for _ in range(3):
        layers += [nn.Linear(width, 100, bias=not bn)]
        layers += [bnlab.BatchNorm1d(100)] if bn else []
        layers += [nn.Sigmoid()]
        width = 100
    model = nn.Sequential(*layers, nn.Linear(100, 10))
    for mod in model.modules():
        if isinstance(mod, nn.Linear):
            nn.init.normal_(mod.weight, std=init_std)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
    return model


model = ioffe_mlp(bn=True)
captured = {}
for name, mod in model.named_modules():
    if isinstance(mod, nn.Linear | bnlab.BatchNorm1d):
        mod.register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, o.detach()))
with torch.no_grad():
    model(mnist_x)

UNITS = 12  # units shown per layer
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
for layer, ax in enumerate(axes):
    pre, post = captured[str(3 * layer)], captured[str(3 * layer + 1)]  # (512, 100) each
    for values, shift, color in ((pre, -0.2, "C0"), (post, 0.2, "C1")):
        boxes = ax.boxplot(
            values[:, :UNITS].numpy(),
            positions=np.arange(UNITS) + shift,
            widths=0.35,
            whis=(5, 95),
            showfliers=False,
            patch_artist=True,
        )
        for patch in boxes["boxes"]:
            patch.set(facecolor=color, alpha=0.6)
    ax.set_xticks(np.arange(UNITS), [str(u) for u in range(UNITS)])
    ax.set_title(f"hidden layer {layer + 1}: units 0-{UNITS - 1} of {pre.shape[1]}")
    ax.set_xlabel("unit")
axes[0].set_ylabel("pre-activation value (dimensionless)")
axes[0].legend(
    [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.6) for c in ("C0", "C1")],
    ["before BN (Linear output)", "after BN"],
    fontsize=8,
)
fig.tight_layout()
plt.show()
for layer in range(3):
    pre, post = captured[str(3 * layer)], captured[str(3 * layer + 1)]
    print(
        f"layer {layer + 1}: before BN unit means span "
        f"[{pre.mean(0).min():.2f}, {pre.mean(0).max():.2f}], "
        f"stds [{pre.std(0).min():.2f}, {pre.std(0).max():.2f}]; after BN means within "
        f"{post.mean(0).abs().max():.1e} of 0, stds in [{post.std(0, unbiased=False).min():.4f}, "
        f"{post.std(0, unbiased=False).max():.4f}]"
    )

# %% [markdown]
# ### 4.2 Training mode vs evaluation mode
#
# In training, BN uses the batch's statistics; in evaluation, the running estimates. A fresh
# layer's running estimates are mean 0, variance 1, and each training step moves them 10%
# (momentum 0.1) towards the batch's. On data with mean 3 and std 2, eval-mode outputs match
# training-mode outputs only once the running statistics have converged:

# %%
bn1 = bnlab.BatchNorm1d(1)
x_fixed = torch.linspace(-3, 9, 50).unsqueeze(1)  # (50, 1): inputs to compare on
data_gen = torch.Generator().manual_seed(0)
fig, ax = plt.subplots(figsize=(7, 4))
with torch.no_grad():
    ax.plot(x_fixed, (x_fixed - 3) / 2, "k--", lw=2, label="ideal: (x - 3) / 2")
    done = 0
    for k in (0, 2, 10, 50):
        for _ in range(k - done):
            bn1.train()(torch.randn(64, 1, generator=data_gen) * 2 + 3)
        done = k
        y_eval = bn1.eval()(x_fixed)
        ax.plot(x_fixed, y_eval, label=f"eval mode after {k} training steps")
        print(
            f"after {k:2d} steps: running_mean {bn1.running_mean.item():.3f}, "
            f"running_var {bn1.running_var.item():.3f}"
        )
ax.set_xlabel("input x (dimensionless)")
ax.set_ylabel("BN output y (dimensionless)")
ax.set_title("Eval-mode output of BatchNorm1d as running statistics converge (data: mean 3, std 2)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ### 4.3 Training dynamics with and without BN on real MNIST, over seeds
#
# Ioffe & Szegedy's Sec. 4.1 network (3 x 100 sigmoid, binarized MNIST, batch 60, SGD lr 0.5),
# with and without BN, trained by bnlab's engine. Three of its words recur below:
#
# - a **stack** is K copies of one network trained as a single vectorized computation (here
#   two stacks: the network with BN, and its baseline without);
# - a **member** is one copy in a stack (here one per seed, 3 seeds);
# - a **probe** is a measurement taken between two training steps that leaves every member
#   exactly as it found it (weights, running statistics, optimizer state, random streams).
#
# **The initialization, and a baseline that trains.** The paper says only that the weights
# start at "small random Gaussian values". The lab's preset `ioffe2015-mnist` picks a
# standard deviation of 0.01; its docstring says that this is the project's choice, not the
# paper's. It runs 50,000 steps, long enough for the baseline to leave its starting
# plateau. A notebook affords 2,000, and a baseline started at std 0.01 leaves its plateau
# slowly (Section 8.1's init grid finds it at chance after 500 steps): "BN minus no BN"
# would then compare BN with a network that has barely started learning, and inflate the
# effect many times over. So both networks here start at std 0.1, where the baseline
# trains; its accuracy is printed next to a floor and asserted.
#
# The run also records the Fig. 1(b, c) percentiles and, every 500 steps, the Santurkar et
# al. measures of Section 8 (as probes).

# %%
SEEDS, STEPS, INIT_STD = 3, 2000, 0.1
FLOOR = 0.85  # test accuracy a 3 x 100 sigmoid net that trains reaches on MNIST in 2,000 steps
TRAINED = 0.5  # "trains at all": at least half of the test set right
cfg = get_preset("ioffe2015-mnist")
cfg = replace(
    cfg,
    seeds=SEEDS,
    steps=STEPS,
    eval_every=100,
    checkpoint_every=STEPS,
    hooks=HookConfig(layers=("act3",), units=(0, 1, 2), every=50),
    model=replace(cfg.model, init_std=INIT_STD),
)
SETTING = (
    f"Ioffe net (3 x 100 sigmoid), binarized MNIST, SGD lr 0.5, batch 60, init std "
    f"{INIT_STD}, {STEPS:,} steps, {SEEDS} seeds"
)
probe = AnalysisProbe(ProbeConfig(every=500, landscape=True, ics=True))
QUIET = RunContext(progress=False)  # no progress bars in a notebook
main_dir = tempfile.mkdtemp(prefix="bn_tutorial_", dir=WORK)
t0 = time.perf_counter()
train(cfg, main_dir, QUIET, probes=[probe])
print(f"trained 2 stacks x {SEEDS} members x {STEPS} steps in {time.perf_counter() - t0:.1f} s")

store = Store(main_dir)
run_of = {run["norm"]: run["run_id"] for run in store.runs()}
NAMES = {"batch": "with BN", "none": "without BN"}

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
final_acc = {}
for norm, run_id in run_of.items():
    steps, acc = store.metric_matrix(run_id, "test_accuracy")  # (T,), (K, T)
    mean, low, high = mean_ci_band(100 * acc)
    axes[0].plot(steps, mean, label=NAMES[norm])
    axes[0].fill_between(steps, low, high, alpha=0.25)
    tsteps, loss = store.train_matrix(run_id, "train_loss")  # (T,), (K, T)
    window = 50  # steps: a moving average, for readability
    smooth = np.stack([np.convolve(r, np.ones(window) / window, mode="valid") for r in loss])
    mean, low, high = mean_ci_band(smooth)
    axes[1].plot(tsteps[window - 1 :], mean, label=NAMES[norm])
    axes[1].fill_between(tsteps[window - 1 :], low, high, alpha=0.25)
    final_acc[norm] = acc[:, -1]
axes[0].axhline(100 * FLOOR, color="k", ls=":", lw=1, label=f"floor for the control ({FLOOR:.0%})")
axes[0].set_xlabel("training step (SGD updates, batch 60)")
axes[0].set_ylabel("test accuracy (%, 10,000 images)")
axes[0].set_title(f"Test accuracy: mean and 95% CI over {SEEDS} seeds")
axes[1].set_xlabel("training step (SGD updates, batch 60)")
axes[1].set_ylabel("training loss (cross-entropy, nats)")
axes[1].set_title(f"Training loss ({window}-step moving average), 95% CI band")
for ax in axes:
    ax.legend()
fig.tight_layout()
plt.show()

control_trains("the network without BN", final_acc["none"], FLOOR)
print(f"final test accuracy with BN: {pct(final_acc['batch'], 2)}")
effect = diff_ci(final_acc["batch"], final_acc["none"], paired=True)
print(f"BN minus no BN, paired by seed: {points(effect, 2)}")
print(lab_line("bn-final-accuracy", "ioffe2015-mnist"))
print(lab_line("bn-final-accuracy", "mnist-notebook"))

# %% [markdown]
# The two lab lines are the same claim at full scale: `ioffe2015-mnist` is this network at
# the preset's init (std 0.01) over 50,000 steps; `mnist-notebook` is the protocol of the
# notebook this tutorial grew from (MLP 784-128-64 with ReLU, Adam). A gap measured after
# 2,000 steps depends on the budget: BN gets there sooner (Section 8.1 counts the steps),
# and a baseline that trains catches up later.
#
# ### 4.4 Ioffe & Szegedy Fig. 1(b, c): the input distribution of a sigmoid over training
#
# The paper plots the {15, 50, 85}th percentiles of one last-hidden-layer unit's sigmoid
# input over training. Without BN they move; with BN they stay put. Seed 0, units 0-2 of
# the third hidden layer:

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4), sharey=False)
for ax, norm in zip(axes, ("none", "batch"), strict=True):
    for unit, color in zip((0, 1, 2), ("C0", "C1", "C2"), strict=True):
        for p, style in ((15, ":"), (50, "-"), (85, ":")):
            steps, q = store.metric_matrix(run_of[norm], f"act/act3/u{unit}/p{p}")  # (T,), (K, T)
            label = f"unit {unit}" if p == 50 else None
            ax.plot(steps, q[0], style, color=color, label=label)
    ax.set_title(f"{NAMES[norm]}: 15th / 50th / 85th percentile (dotted / solid / dotted)")
    ax.set_xlabel("training step (SGD updates)")
    ax.set_ylabel("sigmoid input value (dimensionless)")
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# The paper's claim: without BN the percentiles drift; with BN they stay put. bnlab's
# `percentile_drift` puts a number on it: the mean change of the three percentiles between
# recordings (every 50 steps), in units of the 15-85 spread, after a 10% burn-in; per seed
# and unit, then the mean over units, then the CI over seeds. The baseline is the one that
# trains (4.3); the lab's line is the same measure at the preset's init over 50,000 steps.


# %%
def drift(norm):
    per_unit = []
    for unit in (0, 1, 2):
        cols = [
            store.metric_matrix(run_of[norm], f"act/act3/u{unit}/p{p}")[1] for p in (15, 50, 85)
        ]
        q = np.stack(cols, axis=-1)  # (K, T, 3 percentiles)
        per_unit.append([percentile_drift(q[k]) for k in range(q.shape[0])])
    return np.mean(per_unit, axis=0)  # (K,): mean over units, per seed


drift_effect = diff_ci(drift("batch"), drift("none"), paired=True)
for norm in ("none", "batch"):
    print(
        f"percentile drift {NAMES[norm]:>10}: {format_estimate(mean_ci(drift(norm)), 3)} "
        "(spreads per 50 steps)"
    )
print(f"BN minus no BN, paired: {format_estimate(drift_effect, 3)}")
print(lab_line("bn-percentile-stability", "ioffe2015-mnist"))

# %% [markdown]
# A unit whose input distribution keeps moving forces the next layer to keep re-adapting;
# Section 8 asks whether removing that is why BN helps.
#
# ### 4.5 Layer health over training (makemore part 4)
#
# Karpathy's *makemore* part 4 diagnoses a network with three per-layer plots over
# training: the share of **saturated** activations (a sigmoid output within 1.5% of 0 or 1
# passes almost no gradient back), each weight's gradient next to the weight
# (**grad:data**, the std of one over the std of the other), and each update next to the
# weight (**update:data**; about 1e-3 is the usual sign of a sensible learning rate, much
# less means the layer barely learns). `bnlab.analysis.LayerHealth` records the three for
# any `nn.Module`. The Ioffe net in plain PyTorch, on the first 10,000 MNIST training
# images, seed 0, started as makemore's bad example starts: weights too large (std 1.0),
# with and without BN.

# %%
mnist_x10k, mnist_y10k = data.to_tensor(mnist_train, "binarize", data.first_n(10_000))
mnist_x10k = mnist_x10k.flatten(1)  # (10000, 784)


def health_run(bn, init_std=1.0, steps=600, seed=0):
    """Train the Ioffe net with plain SGD (lr 0.5, batch 60), recording its health."""
    torch.manual_seed(seed)
    model = ioffe_mlp(bn, init_std)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    health = LayerHealth(model, every=20)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, len(mnist_y10k), (60,), generator=gen)
        loss = nn.functional.cross_entropy(model(mnist_x10k[idx]), mnist_y10k[idx])
        opt.zero_grad()
        loss.backward()
        with health.step(step):  # saturation and grad:data before the update, update:data after
            opt.step()
    health.close()
    return health


healths = {bn: health_run(bn) for bn in (True, False)}
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
for bn, style in ((True, "-"), (False, "--")):
    h, tag = healths[bn], "with BN" if bn else "without BN"
    for i, v in enumerate(h.series("saturation").values()):
        axes[0].plot(h.steps, 100 * v, style, color=f"C{i}", label=f"layer {i + 1}, {tag}")
    for ax, kind in ((axes[1], "grad_data"), (axes[2], "update_data")):
        for i, v in enumerate(h.series(kind).values()):
            ax.plot(h.steps, v, style, color=f"C{i}", label=f"weight {i + 1}, {tag}")
axes[0].set_ylabel("saturated sigmoid outputs (%)")
axes[1].set_ylabel("grad:data, std(dL/dW) / std(W)")
axes[2].set_ylabel("update:data, std(dW) / std(W)")
axes[2].axhline(1e-3, color="k", ls=":", lw=1, label="1e-3 (makemore's rule of thumb)")
for ax, title in zip(axes, ("saturation", "grad:data", "update:data"), strict=True):
    ax.set_xlabel("training step (SGD updates, batch 60)")
    ax.set_title(f"{title} (solid: with BN, dashed: without)")
    if ax is not axes[0]:
        ax.set_yscale("log")
axes[0].legend(fontsize=7)
axes[2].legend(fontsize=6, ncol=2)
fig.tight_layout()
plt.show()
for bn in (True, False):
    sat = [100 * v[-1] for v in healths[bn].series("saturation").values()]
    upd = [v[-1] for v in healths[bn].series("update_data").values()]
    print(
        f"{'with BN' if bn else 'without BN':>10}, step {healths[bn].steps[-1]}: saturated "
        f"(%) per layer {np.round(sat, 1)}, update:data per weight {np.round(upd, 5)}"
    )

# %% [markdown]
# Without BN, a large init drives the sigmoid inputs far from 0: a large share of the
# units sit in the flat tails, where they pass back almost no gradient. With BN every
# layer's input is renormalized to mean 0 and variance 1 whatever the weights' scale, so
# the units stay in the sigmoid's responsive middle. Note the other side: BN makes each
# layer's output independent of its weights' scale, so the gradient shrinks as the weights
# grow, and with weights this large BN's update:data ratios are small too. Health plots
# show *where* a network struggles; they are no verdict on which network is better.

# %% [markdown]
# ## 5. Pitfalls, each shown live
#
# The pitfalls use a small MLP on scikit-learn's 8x8 digits (bundled, always present;
# bnlab serves it as `data.load("digits")`), trained with plain PyTorch so that each
# pitfall is visible in a few lines. `digits_mlp` takes the normalization layer as an
# argument: BN, LayerNorm, or none (the control).
#
# Two helpers guard every evaluation below. `bn_state` copies a model's buffers (running
# mean, running variance, `num_batches_tracked`); `check_eval_invariant` then asserts what
# an honest evaluation guarantees: in eval mode the accuracy is the same whatever the
# evaluation batch size (each example is normalized with the running statistics alone),
# and no running statistic moved since the copy (evaluation never writes test data into
# the model).

# %%
digits_train, digits_test = data.load("digits", "train"), data.load("digits", "test")
dx_train, dy_train = data.to_tensor(digits_train, "standardize")
dx_test, dy_test = data.to_tensor(digits_test, "standardize")
dx_train, dx_test = dx_train.flatten(1), dx_test.flatten(1)  # (1500, 64), (297, 64)
print(f"digits: {len(dy_train)} training and {len(dy_test)} test images of 64 pixels")
DIGITS_FLOOR = 0.80  # test accuracy a 64-64 MLP that trains reaches on the 8x8 digits

NORM_LAYERS = {
    "batch": lambda c, momentum: bnlab.BatchNorm1d(c, momentum=momentum),
    "layer": lambda c, momentum: bnlab.LayerNorm(c),
    "none": lambda c, momentum: nn.Identity(),
}


def digits_mlp(seed: int, norm: str = "batch", bias: bool = True, momentum: float = 0.1):
    """64 -> 64 -> 64 -> 10, ReLU, a norm layer ("batch", "layer" or "none") after each Linear."""
    torch.manual_seed(seed)
    layers = []
    for width_in, width_out in ((64, 64), (64, 64)):
        layers.append(nn.Linear(width_in, width_out, bias=bias))
        layers.append(NORM_LAYERS[norm](width_out, momentum))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers, nn.Linear(64, 10))


def fit(model, x, y, steps=300, batch=64, lr=0.05, seed=0):
    """Plain minibatch SGD with momentum; the model is left in training mode."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (batch,), generator=gen)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def accuracy(model, x, y, batch=None):
    """Accuracy (fraction) in whatever mode the model is in, in batches of `batch` examples."""
    batch = batch or len(y)
    with torch.no_grad():
        preds = torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(y), batch)])
    return (preds == y).float().mean().item()


def bn_state(models):
    """A copy of every buffer (running mean and variance, batch count) of each model."""
    return [{name: b.clone() for name, b in m.named_buffers()} for m in models]


def check_eval_invariant(models, x, y, state, batches=(1, 16, None)):
    """Assert that eval accuracy does not depend on the evaluation batch size, and that no
    buffer of any model moved since `state` (bn_state) was taken; say so."""
    accs = [[accuracy(m.eval(), x, y, b) for m in models] for b in batches]  # (sizes, models)
    sizes = ", ".join(str(b or len(y)) for b in batches)
    assert all(a == accs[0] for a in accs), f"eval accuracy depends on the batch size: {accs}"
    moved = [
        f"model {i}: {name}"
        for i, (m, before) in enumerate(zip(models, state, strict=True))
        for name, b in m.named_buffers()
        if not torch.equal(b, before[name])
    ]
    assert not moved, f"running statistics moved during evaluation: {moved}"
    print(
        f"invariant holds for {len(models)} models: eval accuracy identical at evaluation "
        f"batches of {sizes}; no running statistic moved"
    )


models = [fit(digits_mlp(seed), dx_train, dy_train, seed=seed) for seed in range(SEEDS)]
digits_state = bn_state(models)  # the trained models' statistics: nothing below may move them

# %% [markdown]
# ### 5.1 Forgetting `model.eval()`
#
# Wrong: predicting in training mode. Each test batch is normalized with its own statistics,
# so a prediction depends on which other examples share its batch, and small batches are
# noisy. Right: `model.eval()` uses the running statistics. The wrong way runs on a *copy*
# of each model, for a reason the next cell shows.

# %%
x_288, y_288 = dx_test[:288], dy_test[:288]  # 288 test images: divisible by every batch size below
for batch in (4, 16, 288):
    wrong = [accuracy(copy.deepcopy(m).train(), x_288, y_288, batch) for m in models]
    right = [accuracy(m.eval(), x_288, y_288, batch) for m in models]
    print(
        f"test batches of {batch:3d}: train mode (wrong) {pct(wrong)}"
        f"   eval mode (right) {pct(right)}"
    )
probe_model = copy.deepcopy(models[0]).train()
with torch.no_grad():
    alone = probe_model(dx_test[:4])[0]
    other = probe_model(torch.cat([dx_test[:1], dx_test[100:103]]))[0]
print(
    f"train mode: the same image's logits change by up to {(alone - other).abs().max():.3f} "
    "when its 3 batch-mates change"
)
print("  the lab's closest full-scale claim (test batches normalized with their own statistics):")
print(lab_line("batch-stats-small-batch", "train-test-stats/B2"))

# %% [markdown]
# **The quiet half of the bug.** A forward pass in training mode also *updates the running
# statistics*, `torch.no_grad()` or not (5.6). Evaluating in training mode therefore writes
# the test images into the model: every later eval-mode number is computed with statistics
# that have seen the test set. On a copy:

# %%
leaky = copy.deepcopy(models[0])
bn0 = leaky[1]  # the first BatchNorm1d
batches_before, mean_before = bn0.num_batches_tracked.item(), bn0.running_mean.clone()
accuracy(leaky.train(), x_288, y_288, 4)  # the wrong way, once
print(
    f"one train-mode evaluation in batches of 4: num_batches_tracked {batches_before} -> "
    f"{bn0.num_batches_tracked.item()}, running mean moved by up to "
    f"{(bn0.running_mean - mean_before).abs().max().item():.3f}"
)
print(
    f"eval-mode test accuracy: the model {accuracy(models[0].eval(), dx_test, dy_test):.4f}, "
    f"its copy after the leak {accuracy(leaky.eval(), dx_test, dy_test):.4f}"
)

# %% [markdown]
# **Invariant.** The original models were only ever evaluated in eval mode:

# %%
check_eval_invariant(models, dx_test, dy_test, digits_state)

# %% [markdown]
# ### 5.2 Batch size 1 and small batches
#
# BN's statistics come from the batch, so tiny batches hurt it in three ways, each shown
# below.
#
# - **One value per channel.** `BatchNorm1d` on a (1, C) batch has one value per channel:
#   the variance is 0 and $\hat{x}$ is 0/0. PyTorch and bnlab refuse it in training mode
#   (bnlab before changing any state). `BatchNorm2d` on one image (1, C, H, W) is another
#   matter: each channel has $m = H \cdot W$ values, one per position, and it trains.
# - **Two values per channel.** With $m = 2$, $x_1 - \mu = -(x_2 - \mu)$ and
#   $\sigma^2 = (x_1 - x_2)^2 / 4$, so $\hat{x} = \pm 1$ (up to $\epsilon$) whatever the
#   inputs: the next layer learns only which of the two examples was larger, unit by unit.
# - **Noisy statistics.** The mean and variance of 2 or 8 examples are poor estimates of the
#   population's, and training normalizes with them.

# %%
try:
    bnlab.BatchNorm1d(64).train()(torch.randn(1, 64))
except ValueError as err:
    print("BatchNorm1d, a batch of 1 in training mode ->", type(err).__name__ + ":", err)
conv_bn = bnlab.BatchNorm2d(8).train()
conv_bn(torch.randn(1, 8, 5, 5))  # (N, C, H, W): 25 values per channel
print(
    "BatchNorm2d, one image (1, 8, 5, 5) in training mode: trains on m = 1 x 5 x 5 = 25 values "
    f"per channel (num_batches_tracked = {conv_bn.num_batches_tracked.item()})"
)
with torch.no_grad():
    y_two = bnlab.BatchNorm1d(6).train()(torch.randn(2, 6) * 3 + 1)  # (2, 6)
print("m = 2, BatchNorm1d output (2 examples x 6 units):")
print(y_two.numpy().round(6))

# %% [markdown]
# **Small batches, against two controls.** The same number of training examples (4,800)
# for every batch size, the learning rate scaled with the batch (the linear rule), 3 seeds,
# three arms: BN; LayerNorm, which normalizes each example over its own features and so
# does not depend on the batch at all (the contrast d2l draws between the two); and no
# normalization, the control that must train at every batch size. LayerNorm is GroupNorm
# with one group: the lab's full-scale small-batch study uses GroupNorm on a CNN.

# %%
ARMS = {"batch": "BN", "layer": "LayerNorm", "none": "no norm"}
BATCHES, EXAMPLES = (2, 8, 64), 4800
small_acc, small_models = {}, []
for norm in ARMS:
    for batch in BATCHES:
        trained = [
            fit(
                digits_mlp(seed, norm),
                dx_train,
                dy_train,
                steps=EXAMPLES // batch,
                batch=batch,
                lr=0.05 * batch / 64,  # linear scaling rule
                seed=seed,
            )
            for seed in range(SEEDS)
        ]
        small_models += trained
        small_acc[norm, batch] = np.array([accuracy(m.eval(), dx_test, dy_test) for m in trained])
small_state = bn_state(small_models)

fig, ax = plt.subplots(figsize=(7, 4))
for norm, label in ARMS.items():
    est = [mean_ci(100 * small_acc[norm, b]) for b in BATCHES]
    ax.errorbar(
        BATCHES,
        [e.mean for e in est],
        yerr=[e.half_width for e in est],
        fmt="o-",
        capsize=4,
        label=label,
    )
ax.set_xscale("log", base=2)
ax.set_xticks(BATCHES, [str(b) for b in BATCHES])
ax.set_xlabel(f"training batch size (examples; {EXAMPLES:,} examples seen in every run)")
ax.set_ylabel("test accuracy, eval mode (%)")
ax.set_title(f"Small batches: mean and 95% CI over {SEEDS} seeds")
ax.legend()
plt.show()

for norm, label in ARMS.items():
    print(f"{label:>9}: " + ", ".join(f"batch {b} {pct(small_acc[norm, b])}" for b in BATCHES))
for batch in BATCHES:
    control_trains(f"no norm, batch {batch}", small_acc["none", batch], DIGITS_FLOOR)
small, large = BATCHES[0], BATCHES[-1]
bn_growth = diff_ci(1 - small_acc["batch", small], 1 - small_acc["batch", large], paired=True)
ln_growth = diff_ci(1 - small_acc["layer", small], 1 - small_acc["layer", large], paired=True)
ln_vs_bn = diff_ci(1 - small_acc["batch", small], 1 - small_acc["layer", small], paired=True)
print(f"BN's test error at batch {small} minus at batch {large}: {points(bn_growth)}")
print(lab_line("bn-small-batch-error", "small-batch/B2-vs-B32"))
print(f"LayerNorm's test error at batch {small} minus at batch {large}: {points(ln_growth)}")
print(lab_line("gn-small-batch-flat", "small-batch/B2-vs-B32"))
print(f"at batch {small}, BN's test error minus LayerNorm's: {points(ln_vs_bn)}")
print(lab_line("gn-beats-bn-small-batch", "small-batch/B2-vs-B32"))

# %% [markdown]
# **Invariant** for the 27 models of this lesson (the LayerNorm and no-norm models have no
# running statistics; their eval accuracy must not depend on the batch either):

# %%
check_eval_invariant(small_models, dx_test, dy_test, small_state)

# %% [markdown]
# ### 5.3 BN before vs after the activation
#
# Ioffe & Szegedy put BN before the nonlinearity, $g(\mathrm{BN}(Wu))$, and the explainer
# this tutorial grew from recommends the same ("Option 1 for most cases"); many codebases
# put it after. With bnlab's engine it is one config field. Same protocol as 4.3, BN placed
# after the sigmoid, compared seed by seed with the "before" stack trained there. The cell
# prints which placement won here and whether its CI excludes 0, beside the lab's
# full-scale comparison. A short run on one network can disagree with the paper's choice;
# if it does, the cell says so, and the lab's number tells whether it holds at full scale.

# %%
after_dir = tempfile.mkdtemp(prefix="bn_after_", dir=WORK)
cfg_after = replace(
    cfg, norms=("batch",), hooks=HookConfig(), model=replace(cfg.model, norm_position="after")
)
train(cfg_after, after_dir, QUIET)
after_store = Store(after_dir)
_, acc_after = after_store.metric_matrix(after_store.runs()[0]["run_id"], "test_accuracy")
acc_after = acc_after[:, -1]  # (K,) final test accuracy per seed
after_store.close()
control_trains("BN after the sigmoid", acc_after, FLOOR)
print(f"BN before the sigmoid: {pct(final_acc['batch'], 2)}")
print(f"BN after the sigmoid:  {pct(acc_after, 2)}")
placement = diff_ci(final_acc["batch"], acc_after, paired=True)
print(f"before minus after, paired by seed: {points(placement, 2)}")
if placement.low > 0:
    print("-> BN before the sigmoid wins here, as the paper and the explainer recommend.")
elif placement.high < 0:
    print(
        "-> BN AFTER the sigmoid wins here: in this setting the measurement contradicts the "
        "paper's placement and the explainer's recommendation (Option 1)."
    )
else:
    print("-> neither placement wins here: the CI includes 0.")
print(lab_line("bn-before-nonlinearity-accuracy", "bn-placement/sigmoid"))

# %% [markdown]
# ### 5.4 Momentum conventions: PyTorch 0.1 is Keras/TensorFlow 0.9
#
# PyTorch: $\text{running} \leftarrow (1 - m)\,\text{running} + m\,\text{batch}$ with
# default $m = 0.1$. Keras/TF: $\text{running} \leftarrow m\,\text{running} + (1 -
# m)\,\text{batch}$ with default $m = 0.99$. The same average is $m_\text{PyTorch} = 1 -
# m_\text{Keras}$: PyTorch's 0.1 is Keras's 0.9, and Keras's default 0.99 is PyTorch's 0.01
# (a longer average than PyTorch's default). The explainer's "momentum 0.9 - 0.999" is
# written in Keras's convention: in PyTorch that range is 0.1 - 0.001. Copying
# `momentum=0.99` from a Keras model into PyTorch (wrong) makes the running mean follow the
# *last* batch:

# %%
for keras in (0.9, 0.99, 0.999):
    print(f"Keras/TF momentum {keras} = PyTorch momentum {bnlab.keras_to_torch(keras):.3g}")

# %%
fig, ax = plt.subplots(figsize=(8, 4))
stream = torch.Generator().manual_seed(1)
batches = [torch.randn(32, 1, generator=stream) + 2.0 for _ in range(1000)]  # true mean 2
for momentum, label in (
    (0.99, "Keras 0.99 copied verbatim (wrong): momentum=0.99"),  # drawn first, behind
    (0.1, "PyTorch default, momentum=0.1"),
    (0.01, "Keras 0.99 translated right: momentum=0.01"),
):
    bnm, trace = nn.BatchNorm1d(1, momentum=momentum), []
    with torch.no_grad():
        for b in batches:
            bnm(b)
            trace.append(bnm.running_mean.item())
    ax.plot(trace, label=label, lw=1.5 if momentum < 0.5 else 0.8)
    tail = np.array(trace[500:])  # after 500 steps even momentum 0.01 keeps < 1% of its start
    print(
        f"momentum {momentum:4}: running mean over steps 500-1000 has mean {tail.mean():.3f}, "
        f"std {tail.std():.3f} (population mean 2; batch means have std {1 / np.sqrt(32):.3f})"
    )
ax.axhline(2.0, color="k", ls="--", lw=1, label="population mean")
ax.set_xlabel("training step (batches of 32)")
ax.set_ylabel("running_mean (dimensionless)")
ax.set_title("Running mean under three momentum settings")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ### 5.5 A bias before BN is redundant
#
# BN subtracts the batch mean, so a constant added before it cancels exactly: the Linear's
# bias changes nothing and its gradient is zero. `beta` takes its role. Same weights, with
# and without the bias:

# %%
torch.manual_seed(0)
x64 = dx_train[:128].double()  # float64, so that "zero" is zero up to rounding
lin = nn.Linear(64, 32).double()
out_with = bnlab.BatchNorm1d(32).double()(lin(x64))
lin_nobias = nn.Linear(64, 32, bias=False).double()
lin_nobias.weight.data.copy_(lin.weight.data)
out_without = bnlab.BatchNorm1d(32).double()(lin_nobias(x64))
print(
    f"max |output with bias - output without| = {(out_with - out_without).abs().max().item():.1e}"
)
out_with.pow(2).sum().backward()
print(
    f"max |dL/d bias| = {lin.bias.grad.abs().max().item():.1e}   "
    f"(vs max |dL/d weight| = {lin.weight.grad.abs().max().item():.1e})"
)

# %% [markdown]
# So write `nn.Linear(..., bias=False)` before BN: the same function, fewer parameters.
#
# ### 5.6 Running statistics under `torch.no_grad()` in training mode
#
# The explainer this tutorial grew from says that `with torch.no_grad(): model(x)` "prevents
# running stat updates". It does not: `no_grad` turns off gradient recording only. A BN
# layer in training mode updates its running statistics whether or not gradients are
# recorded. What stops the update is `model.eval()`.

# %%
bn_ng = bnlab.BatchNorm1d(3)
x_ng = torch.randn(64, 3) * 2 + 5
print(
    "before:                    running_mean",
    bn_ng.running_mean.numpy().round(3),
    " batches",
    bn_ng.num_batches_tracked.item(),
)
with torch.no_grad():
    bn_ng.train()(x_ng)
print(
    "no_grad + train() forward: running_mean",
    bn_ng.running_mean.numpy().round(3),
    " batches",
    bn_ng.num_batches_tracked.item(),
)
with torch.no_grad():
    bn_ng.eval()(x_ng)
print(
    "no_grad + eval() forward:  running_mean",
    bn_ng.running_mean.numpy().round(3),
    " batches",
    bn_ng.num_batches_tracked.item(),
)
torch_bn = nn.BatchNorm1d(3)
with torch.no_grad():
    torch_bn.train()(x_ng)
print(
    "torch.nn.BatchNorm1d does the same: under no_grad its running_mean moved by",
    f"{torch_bn.running_mean.abs().max().item():.3f}",
)

# %% [markdown]
# This is a feature, not a bug: re-estimating running statistics on new data without
# training (next pitfall) relies on it.
#
# ### 5.7 Fine-tuning on shifted data: frozen vs updating statistics
#
# The digits models of 5.1 (whose statistics the invariant showed untouched) were trained on
# standardized inputs. New domain: the same images with lower contrast and a brightness
# offset ($0.5x + 1$). We compare, over 3 seeds, on copies of the models: (a) the model as
# is, (b) only re-estimating the running statistics on the new training images (no weight
# change; "AdaBN"), (c) fine-tuning 100 steps with BN in eval mode (statistics frozen at the
# old domain), (d) fine-tuning 100 steps in training mode (statistics updating).


# %%
def shift(x):
    return 0.5 * x + 1.0


new_train, new_test = shift(dx_train), shift(dx_test)


def reestimate_stats(model, x):
    for mod in model.modules():
        if isinstance(mod, bnlab.BatchNorm1d):
            mod.reset_running_stats()
            mod.momentum = None  # cumulative average over the passes below
    model.train()
    with torch.no_grad():  # no_grad: running statistics still update (5.6)
        for i in range(0, len(x), 100):
            model(x[i : i + 100])
    for mod in model.modules():
        if isinstance(mod, bnlab.BatchNorm1d):
            mod.momentum = 0.1
    return model.eval()


def finetune(model, frozen_stats):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    for _ in range(100):
        model.train()
        if frozen_stats:
            for mod in model.modules():
                if isinstance(mod, bnlab.BatchNorm1d):
                    mod.eval()  # normalize with the old running statistics, do not update them
        idx = torch.randint(0, len(dy_train), (64,), generator=gen)
        loss = nn.functional.cross_entropy(model(new_train[idx]), dy_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


adapt = {
    "(a) as is": lambda m: m.eval(),
    "(b) re-estimate statistics only": lambda m: reestimate_stats(m, new_train),
    "(c) fine-tune, statistics frozen": lambda m: finetune(m, frozen_stats=True),
    "(d) fine-tune, statistics updating": lambda m: finetune(m, frozen_stats=False),
}
adapted = {name: [fn(copy.deepcopy(m)) for m in models] for name, fn in adapt.items()}
adapted_models = [m for ms in adapted.values() for m in ms]
adapted_state = bn_state(adapted_models)  # after adaptation, before any evaluation
print(f"original domain, eval mode: {pct([accuracy(m.eval(), dx_test, dy_test) for m in models])}")
for name, ms in adapted.items():
    print(f"shifted domain, {name:36s}: {pct([accuracy(m, new_test, dy_test) for m in ms])}")
print("  lab, full scale: the lab has no domain-shift experiment, so no number stands beside these")

# %% [markdown]
# Compare (a) with (b): the gap is what stale statistics alone cost, since (b) changes no
# weight. Frozen statistics, (c), are the usual choice when the new data resembles the old
# and fine-tuning batches are small (detection models fine-tune that way); when the input
# distribution shifts, re-estimating the statistics is the cheap first step.
#
# **Invariant**, for the original models (still untouched after 5.1-5.7) and for the 12
# adapted copies (evaluated on the shifted test set):

# %%
check_eval_invariant(models, dx_test, dy_test, digits_state)
check_eval_invariant(adapted_models, new_test, dy_test, adapted_state)

# %% [markdown]
# ## 6. Practical application
#
# ### 6.1 A tabular task: unscaled features
#
# scikit-learn's bundled breast-cancer data: 569 tumours, 30 features on very different
# scales (from about 0.001 to a few thousand), a fixed 70/30 split, 5 seeds. Four arms: raw
# or standardized features (`sklearn.preprocessing.StandardScaler`, fitted on the training
# split), each with and without BN (after each Linear layer, and on the input). The control
# is the usual fix without BN: standardized features, no BN. A classifier that predicts
# only the majority class already gets that class's share of the test set right, so that
# share is the number to beat, and the control's floor sits well above it.

# %%
cancer = load_breast_cancer()
xa_tr, xa_te, ya_tr, ya_te = train_test_split(
    cancer.data, cancer.target, test_size=0.3, random_state=0, stratify=cancer.target
)
scaler = StandardScaler().fit(xa_tr)  # the training split's mean and std per feature
features = {
    "raw": (xa_tr, xa_te),
    "standardized": (scaler.transform(xa_tr), scaler.transform(xa_te)),
}
features = {
    k: (torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
    for k, (a, b) in features.items()
}
ya_tr, ya_te = torch.tensor(ya_tr), torch.tensor(ya_te)
majority_class = int(torch.bincount(ya_tr).argmax())
majority_share = (ya_te == majority_class).float().mean().item()
TABULAR_FLOOR = 0.90  # well above the majority share
print(
    f"raw feature values in the training data: min {features['raw'][0].min().item():.4f}, "
    f"max {features['raw'][0].max().item():.1f}; majority class share of the test set: "
    f"{majority_share:.1%}"
)


def tabular_mlp(seed, bn):
    torch.manual_seed(seed)
    norm = (lambda c: bnlab.BatchNorm1d(c)) if bn else (lambda c: nn.Identity())
    return nn.Sequential(
        norm(30),
        nn.Linear(30, 64),
        norm(64),
        nn.ReLU(),
        nn.Linear(64, 64),
        norm(64),
        nn.ReLU(),
        nn.Linear(64, 2),
    )


tab_models = {
    (inputs, bn): [
        fit(tabular_mlp(seed, bn), x_tr, ya_tr, steps=300, batch=32, lr=0.01, seed=seed)
        for seed in range(5)
    ]
    for inputs, (x_tr, _) in features.items()
    for bn in (True, False)
}
tab_state = {key: bn_state(ms) for key, ms in tab_models.items()}
tab, majority_preds = {}, {}
for (inputs, bn), trained in tab_models.items():
    x_te = features[inputs][1]
    tab[inputs, bn] = np.array([accuracy(m.eval(), x_te, ya_te) for m in trained])
    with torch.no_grad():  # how often each model predicts the majority class
        majority_preds[inputs, bn] = np.mean(
            [(m(x_te).argmax(1) == majority_class).float().mean().item() for m in trained]
        )
for (inputs, bn), accs in tab.items():
    print(
        f"{inputs:>12} features, {'with BN' if bn else 'no BN':>7}: test accuracy {pct(accs)}; "
        f"predicts the majority class for {majority_preds[inputs, bn]:.1%} of the test set"
    )
control_trains("standardized features, no BN", tab["standardized", False], TABULAR_FLOOR)
for inputs in features:
    gain = diff_ci(tab[inputs, True], tab["standardized", False], paired=True)
    print(f"BN on {inputs} features minus the control, paired by seed: {points(gain)}")
print("  lab, full scale: the lab has no tabular experiment, so no number stands beside these")

# %% [markdown]
# Without BN on the raw features the network does not learn: its accuracy is the majority
# class's share, because it predicts that class for (nearly) every tumour. That arm is a
# baseline that does not train, and an effect measured against it would be meaningless;
# the comparison that counts is against the standardized control. Standardizing once is the
# cheap fix for the input; BN also keeps the hidden layers' scales in check, and on raw
# features it does the input's standardization on the fly.

# %% [markdown]
# **Invariant** for the 20 tabular models, each arm on its own test features:

# %%
for (inputs, bn), trained in tab_models.items():
    check_eval_invariant(trained, features[inputs][1], ya_te, tab_state[inputs, bn])

# %% [markdown]
# ### 6.2 A small CNN, and folding BN for inference
#
# Two conv blocks (3x3 conv, `bnlab.BatchNorm2d`, ReLU, 2x2 max-pool) on the 8x8 digits,
# with and without BN (the control), 3 seeds.


# %%
def small_cnn(seed, bn):
    torch.manual_seed(seed)
    norm = (lambda c: bnlab.BatchNorm2d(c)) if bn else (lambda c: nn.Identity())
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        norm(16),
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, 16, 4, 4)
        nn.Conv2d(16, 32, 3, padding=1),
        norm(32),
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, 32, 2, 2)
        nn.Flatten(),
        nn.Linear(32 * 2 * 2, 10),
    )


img_train, img_test = dx_train.view(-1, 1, 8, 8), dx_test.view(-1, 1, 8, 8)  # (N, 1, 8, 8)
cnns = {
    bn: [
        fit(small_cnn(seed, bn), img_train, dy_train, steps=200, batch=64, lr=0.05, seed=seed)
        for seed in range(SEEDS)
    ]
    for bn in (True, False)
}
cnn_state = {bn: bn_state(ms) for bn, ms in cnns.items()}
cnn_acc = {
    bn: np.array([accuracy(m.eval(), img_test, dy_test) for m in ms]) for bn, ms in cnns.items()
}
control_trains("CNN without BN", cnn_acc[False], DIGITS_FLOOR)
print(f"CNN test accuracy with BN: {pct(cnn_acc[True])}")
print(
    f"BN minus no BN, paired by seed: {points(diff_ci(cnn_acc[True], cnn_acc[False], paired=True))}"
)
print("  the closest full-scale setting in the lab is a CNN on a CIFAR-10 subset:")
print(lab_line("bn-final-accuracy", "cifar10-cnn"))

# %% [markdown]
# **Invariant** for the 6 CNNs:

# %%
for bn, ms in cnns.items():
    check_eval_invariant(ms, img_test, dy_test, cnn_state[bn])

# %% [markdown]
# **Folding.** In eval mode BN is a fixed per-channel affine map,
# $y = s \odot z + t$ with $s = \gamma / \sqrt{\mathrm{running\_var} + \epsilon}$ and
# $t = \beta - s \odot \mathrm{running\_mean}$. If $z = Wx + b$, the two compose into one
# layer: $W' = s \odot W$ (row by row), $b' = s \odot b + t$. `bnlab.fold_batchnorm` returns
# an eval-mode copy with every BN folded into its Conv/Linear:

# %%
cnn_model = cnns[True][0].eval()
folded = bnlab.fold_batchnorm(cnn_model)
print(folded)
with torch.no_grad():
    print(
        "max |folded - unfolded| logits on the test set:",
        f"{(folded(img_test) - cnn_model(img_test)).abs().max().item():.1e}",
    )
    t_unfolded = median_ms(lambda: cnn_model(img_test))
    t_folded = median_ms(lambda: folded(img_test))
print(
    f"inference on {len(dy_test)} images: unfolded {t_unfolded:.3f} ms, "
    f"folded {t_folded:.3f} ms (median of 50)"
)

# %% [markdown]
# ## 7. Performance: bnlab vs `torch.nn` vs NumPy
#
# Forward + backward in training mode, float32, one thread (set at the top), median of 30
# runs each, in this process.
# bnlab's module is a hand-written `autograd.Function` (large inputs, at least $2^{20}$
# elements, take a compiled path; the shapes here stay below it). `torch.nn` calls one fused
# ATen kernel. The NumPy reference is written for reading, not speed.
# `benchmarks/bn_op.py` is the full benchmark; Section 3 timed the staged and fused NumPy
# backward against each other.


# %%
def time_bn(shape, repeats=30):
    C = shape[1]
    x = torch.randn(shape, requires_grad=True)
    dy = torch.randn(shape)
    layer = bnlab.BatchNorm2d if len(shape) == 4 else bnlab.BatchNorm1d
    torch_layer = nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d
    out = {}
    for name, mod in (("bnlab", layer(C)), ("torch.nn", torch_layer(C))):
        out[name] = median_ms(lambda mod=mod: mod(x).backward(dy), repeats)
    xn, dyn = x.detach().numpy(), dy.numpy()
    g, b = np.ones(C, np.float32), np.zeros(C, np.float32)
    out["NumPy reference"] = median_ms(
        lambda: reference.backward(dyn, reference.forward(xn, g, b)[1]), repeats
    )
    return out


shapes = [(60, 100), (256, 1024), (64, 32, 16, 16)]
timings = {s: time_bn(s) for s in shapes}
fig, ax = plt.subplots(figsize=(8, 3.5))
width = 0.25
for i, impl in enumerate(("bnlab", "torch.nn", "NumPy reference")):
    ax.bar(
        np.arange(len(shapes)) + (i - 1) * width,
        [timings[s][impl] for s in shapes],
        width,
        label=impl,
    )
ax.set_xticks(np.arange(len(shapes)), [str(s) for s in shapes])
ax.set_xlabel("input shape (N, C) or (N, C, H, W)")
ax.set_ylabel("forward + backward time (ms, median)")
ax.set_yscale("log")
ax.set_title("BN forward + backward, float32, CPU")
ax.legend()
plt.show()
for s in shapes:
    t = timings[s]
    print(
        f"{s!s:18}: bnlab {t['bnlab']:.3f} ms ({t['bnlab'] / t['torch.nn']:.1f}x torch.nn's time), "
        f"torch.nn {t['torch.nn']:.3f} ms, NumPy reference {t['NumPy reference']:.3f} ms"
    )

# %% [markdown]
# ## 8. Why does BN help? The debate
#
# **Internal covariate shift** (Ioffe & Szegedy 2015): BN helps because each layer's input
# distribution stops moving as earlier layers learn (Section 4.4's percentiles).
#
# **Smoothing** (Santurkar, Tsipras, Ilyas & Madry 2018): they define ICS by what the
# optimizer sees, $\|G - G'\|$ between a layer's gradient before and after the earlier
# layers take their step, and find BN does *not* reduce it, sometimes increases it; what BN
# does is make the loss landscape smoother: the loss changes less along the gradient
# ("loss variation"), the gradient changes less along it (gradient predictiveness), and
# the effective $\beta$-smoothness is smaller.
#
# The MNIST run of 4.3 measured these every 500 steps with `bnlab.analysis` probes, for
# every member. Two cautions before reading them:
#
# - **Only steps where both networks train count.** A network still on its starting plateau
#   has tiny gradients, so its loss barely varies along them: small numbers there mean "not
#   moving", not "smooth". A probe step is used only if both networks get at least half of
#   the test set right there.
# - **Absolute measures scale with the gradient.** Loss variation, gradient change and
#   $\|G - G'\|$ all grow with the size of the gradient, which BN changes. Their scale-free
#   forms, the gradient change divided by $\|g\|$ and $1 - \cos(G, G')$, separate "rougher"
#   from "larger gradients".
#
# Per seed we average each measure over the usable probe steps, then compare BN with the
# baseline as $\log_{10}(\mathrm{BN} / \mathrm{baseline})$, paired by seed: negative means BN's
# value is smaller. The first layer, fc1, has no earlier layer to shift its input, so its
# ICS is 0 by definition and is left out.

# %%
probe_steps = store.metric_matrix(run_of["batch"], "landscape/loss_variation")[0]  # (T,)


def accuracy_at(norm, step):
    """Mean test accuracy over seeds at the last evaluation at or before `step`."""
    steps, acc = store.metric_matrix(run_of[norm], "test_accuracy")  # (T,), (K, T)
    return acc[:, steps <= step][:, -1].mean()


usable = np.array(
    [s > 0 and all(accuracy_at(n, s) >= TRAINED for n in run_of) for s in probe_steps]
)
print(
    f"probe steps {probe_steps.tolist()}; both networks train at "
    f"{probe_steps[usable].tolist()} (mean test accuracy >= {TRAINED:.0%})"
)


def probed(norm, name, per=None):
    """(K, T usable) values of a probe measure, divided by measure `per` if given."""
    steps, v = store.metric_matrix(run_of[norm], name)  # (T,), (K, T)
    assert np.array_equal(steps, probe_steps)
    v = 1 - v if name.startswith("ics_cos/") else v  # 1 - cos: 0 when G' points like G
    return v[:, usable] / (1 if per is None else probed(norm, per))


ICS, LANDSCAPE = "santurkar2018-ics/mnist", "santurkar2018-landscape/mnist"  # the lab's settings
MEASURES = {  # label: (probe measure, divided by, lab claim id, the lab's setting)
    "ICS ||G - G'||, fc2": ("ics_l2/fc2", None, "santurkar-ics-not-reduced", ICS),
    "ICS ||G - G'||, fc3": ("ics_l2/fc3", None, "santurkar-ics-not-reduced", ICS),
    "ICS 1 - cos(G, G'), fc3": ("ics_cos/fc3", None, "santurkar-ics-cosine-not-reduced", ICS),
    "loss variation": ("landscape/loss_variation", None, "santurkar-loss-variation", LANDSCAPE),
    "gradient change": (
        "landscape/grad_change_max",
        None,
        "santurkar-gradient-predictiveness",
        LANDSCAPE,
    ),
    "gradient change / ||g||": (
        "landscape/grad_change_max",
        "landscape/grad_norm",
        None,  # the lab shows this form as a diagnostic of the gradient-change rows
        LANDSCAPE,
    ),
    "effective beta-smoothness": (
        "landscape/beta_smoothness",
        None,
        "santurkar-beta-smoothness",
        LANDSCAPE,
    ),
}

ICS_ROW, ICS_COS_ROW = "ICS ||G - G'||, fc3", "ICS 1 - cos(G, G'), fc3"


def sign_words(est):
    """Which way a log-ratio points, and only if its CI excludes 0."""
    if est.high < 0:
        return "BN smaller"
    if est.low > 0:
        return "BN larger"
    return "CI includes 0: no sign"


debate = {}
for label, (name, per, claim, setting) in MEASURES.items():
    bn_v, base_v = (probed(norm, name, per).mean(1) for norm in ("batch", "none"))  # (K,) each
    debate[label] = mean_ci(np.log10(bn_v) - np.log10(base_v))  # paired by seed
    print(
        f"{label:26s}: log10(BN / baseline) = {format_estimate(debate[label], 2)} -> "
        f"{sign_words(debate[label])}"
    )
    print(lab_line(claim, setting))

fig, axes = plt.subplots(1, 2, figsize=(14, 4), gridspec_kw={"width_ratios": [1.2, 1]})
labels = list(MEASURES)
ys = np.arange(len(labels))[::-1]
axes[0].errorbar(
    [debate[k].mean for k in labels],
    ys,
    xerr=[debate[k].half_width for k in labels],
    fmt="o",
    capsize=4,
)
axes[0].axvline(0, color="k", lw=1)
axes[0].set_yticks(ys, labels)
axes[0].set_xlabel("log10(BN / baseline), paired by seed (< 0: smaller with BN)")
axes[0].set_title(f"Santurkar measures, mean and 95% CI over {SEEDS} seeds")
for norm in ("batch", "none"):
    log_v = np.log10(probed(norm, "landscape/loss_variation"))  # (K, usable T)
    mean, low, high = mean_ci_band(log_v)
    axes[1].errorbar(
        probe_steps[usable] + (20 if norm == "batch" else -20),
        mean,
        yerr=[mean - low, high - mean],
        fmt="o-",
        capsize=4,
        label=NAMES[norm],
    )
axes[1].set_xlabel("training step (SGD updates)")
axes[1].set_ylabel("log10 loss variation along the gradient (log10 nats)")
axes[1].set_title("Loss variation at the usable probe steps, 95% CI of the log")
axes[1].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# How to read it: each row's sign is printed above and stands in the left panel; a CI that
# crosses the vertical line has no sign. Santurkar et al.'s smoothing claim predicts
# negative values for the four landscape rows; their ICS claim predicts values that are
# not negative for the ICS rows. The lab's line under each row is the same measure at full
# scale on this network (`santurkar2018-landscape/mnist` and `santurkar2018-ics/mnist`: the
# preset's init, a longer run, log2 rather than log10); the paper's own setting is
# a VGG network on CIFAR-10, which the lab also runs (`santurkar2018-landscape/vgg-*`). A
# sign measured on a 3-layer MLP over 2,000 steps is evidence about that setting only.

# %%
smoothing = [k for k in labels if not k.startswith("ICS")]
said = {
    word: [k for k in smoothing if sign_words(debate[k]) == word]
    for word in ("BN smaller", "BN larger", "CI includes 0: no sign")
}
print("Smoothing (Santurkar et al. predict: smaller with BN), in this run:")
for word, which in said.items():
    print(f"  {word}: {', '.join(which) if which else '-'}")
ics_rows = [k for k in labels if k.startswith("ICS")]
print("ICS (Santurkar et al. predict: not smaller with BN), in this run:")
for k in ics_rows:
    print(f"  {k}: {sign_words(debate[k])}")

# %% [markdown]
# ### 8.1 The explainer's claims table, measured
#
# The explainer this tutorial grew from lists BN's benefits as a table. Each row below puts
# one of its claims next to what this notebook measured (the effect with its 95% CI and n),
# the setting it was measured in, and the lab's full-scale number for the same claim.
# Every row is measured against a baseline that trains; the notebook checks it. Two more
# small engine runs first: a learning-rate grid and an init-scale grid (500 steps each,
# 3 seeds, same net and data, init std 0.1 unless the grid varies it).

# %%
short = replace(cfg, steps=500, eval_every=500, checkpoint_every=500, hooks=HookConfig())
LRS = (0.05, 0.5, 5.0, 15.0, 50.0)
lr_dir = tempfile.mkdtemp(prefix="bn_lr_", dir=WORK)
train(replace(short, optim=replace(short.optim, lrs=LRS)), lr_dir, QUIET)
lr_store = Store(lr_dir)
lr_acc = {}
for run in lr_store.runs():
    _, acc = lr_store.metric_matrix(run["run_id"], "test_accuracy")  # (K,) members = seeds x lrs
    lr_acc[run["norm"]] = np.nan_to_num(acc[:, -1].reshape(SEEDS, len(LRS)), nan=0.0)
    print(
        f"{NAMES[run['norm']]:>10}: test accuracy (%) per lr {LRS}, mean over seeds:",
        np.round(100 * lr_acc[run["norm"]].mean(0), 1),
    )
lr_store.close()
# "trains at this lr": more than half of the test set right after 500 steps
highest = {
    norm: [highest_trainable(LRS, row > TRAINED) for row in acc] for norm, acc in lr_acc.items()
}

INITS = (0.01, 0.1, 1.0)
init_acc = {"batch": [], "none": []}
for std in INITS:
    init_dir = tempfile.mkdtemp(prefix="bn_init_", dir=WORK)
    train(replace(short, model=replace(short.model, init_std=std)), init_dir, QUIET)
    init_store = Store(init_dir)
    for run in init_store.runs():
        init_acc[run["norm"]].append(
            np.nan_to_num(init_store.metric_matrix(run["run_id"], "test_accuracy")[1][:, -1])
        )
    init_store.close()
for norm in init_acc:
    init_acc[norm] = np.stack(init_acc[norm], axis=1)  # (seeds, inits)
    print(
        f"{NAMES[norm]:>10}: test accuracy (%) per init std {INITS}, mean over seeds:",
        np.round(100 * init_acc[norm].mean(0), 1),
    )

# %% [markdown]
# Note the init grid's first column: at std 0.01 and 500 steps the baseline sits at chance.
# That plateau is what 4.3 avoids by starting at std 0.1.


# %%
def steps_to(norm, threshold):
    steps, acc = store.metric_matrix(run_of[norm], "test_accuracy")
    return [steps_to_accuracy(steps, row, threshold) for row in acc]


def verdict(est, lower="BN lower", higher="BN higher"):
    """Words for the sign of an effect: only a CI that excludes 0 counts."""
    if est.high < 0:
        return lower
    if est.low > 0:
        return higher
    return "CI includes 0: no sign"


rows = []  # (claim, setting, measured here, lab's full scale)


def add_row(claim, setting, measured, lab, baseline_trains):
    """A row of the table; a row whose baseline does not train is refused."""
    assert baseline_trains, f"{claim}: measured against a baseline that does not train"
    rows.append((claim, setting, measured, lab))


THRESHOLD = 0.9
bn_steps, base_steps = steps_to("batch", THRESHOLD), steps_to("none", THRESHOLD)
if all(s is not None for s in bn_steps + base_steps):
    speed = mean_ci(np.array(base_steps) / np.array(bn_steps))
    speed_text = (
        f"baseline / BN steps to {THRESHOLD:.0%} test accuracy: {format_estimate(speed, 1, 1, 'x')}"
    )
else:
    reached = [s is not None for s in base_steps]
    speed_text = (
        f"no finite ratio: the baseline reached {THRESHOLD:.0%} in {sum(reached)}/{SEEDS} "
        f"seeds within {STEPS} steps, BN in {sum(s is not None for s in bn_steps)}/{SEEDS}"
    )
add_row(
    "2-5x faster training",
    SETTING,
    speed_text,
    lab_result("bn-fewer-steps", "ioffe2015-mnist"),
    baseline_trains=bool((final_acc["none"] >= FLOOR).all()),
)
add_row(
    "+7% final accuracy (85% to 92%)",
    SETTING,
    f"BN minus baseline: {points(effect, 2)} (BN {pct(final_acc['batch'])}, baseline "
    f"{pct(final_acc['none'])})",
    f"ioffe2015-mnist: {lab_result('bn-final-accuracy', 'ioffe2015-mnist')}; mnist-notebook: "
    f"{lab_result('bn-final-accuracy', 'mnist-notebook')}",
    baseline_trains=bool((final_acc["none"] >= FLOOR).all()),
)
roughness = {
    norm: np.array([loss_smoothness(r) for r in store.train_matrix(run_of[norm], "train_loss")[1]])
    for norm in run_of
}  # (K,) std of step-to-step training-loss change, nats
rough_effect = diff_ci(roughness["batch"], roughness["none"], paired=True)
add_row(
    "convergence stability: unstable -> stable",
    SETTING,
    f"std of the step-to-step change of the training loss, BN minus baseline: "
    f"{format_estimate(rough_effect, 4, 1, ' nats')} ({verdict(rough_effect)})",
    lab_result("bn-smoother-loss", "ioffe2015-mnist"),
    baseline_trains=bool((final_acc["none"] >= FLOOR).all()),
)
trains_somewhere = all(h is not None for h in highest["none"])
if trains_somewhere and all(h is not None for h in highest["batch"]):
    lr_ratio = mean_ci(np.log10(highest["batch"]) - np.log10(highest["none"]))
    lr_text = (
        f"log10(highest lr that trains, BN / baseline): {format_estimate(lr_ratio, 2)} "
        f"(1.0 = 10x; per seed: BN {highest['batch']}, baseline {highest['none']})"
    )
else:
    lr_text = f"highest lr that trains per seed: BN {highest['batch']}, baseline {highest['none']}"
add_row(
    "10x+ learning-rate tolerance",
    f"same net, 500 steps at each lr of {LRS}, {SEEDS} seeds; trains: > {TRAINED:.0%} right",
    lr_text,
    lab_result("bn-higher-lr", "ioffe2015-lr"),
    baseline_trains=trains_somewhere,
)
spread_bn = init_acc["batch"].max(1) - init_acc["batch"].min(1)  # (seeds,) range over inits
spread_base = init_acc["none"].max(1) - init_acc["none"].min(1)
init_effect = diff_ci(spread_bn, spread_base, paired=True)
add_row(
    "reduces initialization sensitivity",
    f"same net, 500 steps at each init std of {INITS}, {SEEDS} seeds",
    f"range of test accuracy over the inits, BN minus baseline: {points(init_effect)} "
    f"({verdict(init_effect)}; BN {points(mean_ci(spread_bn))}, baseline "
    f"{points(mean_ci(spread_base))})",
    lab_result("bn-init-insensitive", "init-sensitivity"),
    baseline_trains=bool((init_acc["none"].max(1) > TRAINED).all()),
)
add_row(
    "reduces internal covariate shift",
    SETTING + "; Santurkar's sense at the probe steps where both train",
    f"Ioffe's sense (4.4), percentile drift, BN minus baseline: "
    f"{format_estimate(drift_effect, 3)} ({verdict(drift_effect)}). Santurkar's sense "
    f"(Section 8), log10(BN / baseline) of ||G - G'|| at fc3: "
    f"{format_estimate(debate[ICS_ROW], 2)} ({sign_words(debate[ICS_ROW])}); scale-free "
    f"1 - cos(G, G'): {format_estimate(debate[ICS_COS_ROW], 2)} "
    f"({sign_words(debate[ICS_COS_ROW])}). ||G - G'|| grows with the gradient's size, "
    "which BN changes: read it beside the scale-free row",
    f"Ioffe's sense: {lab_result('bn-percentile-stability', 'ioffe2015-mnist')}; Santurkar's: "
    f"{lab_result('santurkar-ics-not-reduced', ICS)}",
    baseline_trains=bool(usable.any()),
)
gap = {  # train minus test accuracy at the end: how much better the training batches fit
    norm: store.train_matrix(run_of[norm], "train_accuracy")[1][:, -100:].mean(1) - final_acc[norm]
    for norm in run_of
}
gap_effect = diff_ci(gap["batch"], gap["none"], paired=True)
add_row(
    "regularization effect, reduces overfitting",
    SETTING + " (short of convergence: little room to overfit)",
    f"generalization gap (train accuracy over the last 100 steps minus test accuracy), BN "
    f"minus baseline: {points(gap_effect, 2)} ({verdict(gap_effect)}; BN "
    f"{points(mean_ci(gap['batch']), 2)}, baseline {points(mean_ci(gap['none']), 2)})",
    "no lab experiment measures this claim",
    baseline_trains=bool((final_acc["none"] >= FLOOR).all()),
)
table = "| claim (explainer) | setting | measured here (95% CI, n) | lab, full scale |\n"
table += "|---|---|---|---|\n"
table += "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows)
display(Markdown(table))

# %% [markdown]
# **Not measured here.** "Prevents vanishing gradients in deep networks": a 3-layer network
# cannot test a claim about depth (4.5's health plots show the gradient per layer of this
# one). The lab's `bnlab reproduce santurkar2018-deep-linear` trains a 25-layer network with
# and without BN.
#
# A claim measured on one network, one dataset and a few seeds is evidence about that
# setting, not a law: the explainer's numbers come with no setting at all. The lab's
# full-scale verdicts, with the paper's numbers beside them, are in
# [docs/results/report.md](../docs/results/report.md).
#
# ## 9. Exercises with self-checking answers
#
# Each exercise gives a function signature. Replace `raise NotImplementedError` with your
# code and run the cell: the checker from `bnlab.exercises` grades your function against an
# independent answer (bnlab's reference, `torch.nn`, `fold_batchnorm`) and, if it is wrong,
# says where and names the mistake when it recognises it. Worked solutions:
# [bn_solutions.ipynb](bn_solutions.ipynb) (try first!).
#
# **Exercise 1: forward pass.** `x` is (N, C) or (N, C, H, W), float64; statistics per
# channel (over every axis but 1); return `y` like `x`.


# %%
def my_forward(x, gamma, beta, eps):
    raise NotImplementedError


exercises.check_forward(my_forward)

# %% [markdown]
# **Exercise 2: the backward pass.** `x` and `dy` are (N, C); return `(dx, dgamma, dbeta)`.
# Hint: the fused formula of Section 3, or the staged chain rule.


# %%
def my_backward(dy, x, gamma, eps):
    raise NotImplementedError


exercises.check_backward(my_backward)

# %% [markdown]
# **Exercise 3: the running-statistics update.** PyTorch's convention, momentum 0.1; `var`
# is the biased batch variance of `m` values per channel. Return new arrays; do not modify
# the inputs.


# %%
def my_running_stats(running_mean, running_var, mu, var, m, momentum):
    raise NotImplementedError


exercises.check_running_stats(my_running_stats)

# %% [markdown]
# **Exercise 4: fold BN into a Linear layer.** Given `linear` (`nn.Linear`) and `bn`
# (`nn.BatchNorm1d` in eval mode, float64), return a new `nn.Linear` that computes
# `bn(linear(x))`.


# %%
def my_fold(linear, bn):
    raise NotImplementedError


exercises.check_fold(my_fold)

# %% [markdown]
# **Exercise 5: predict the eval output after k steps.** A fresh `nn.BatchNorm1d(C,
# momentum=momentum)` sees the same `x` (N, C) k times in training mode, then is switched to
# eval and applied to `x`. What does it output? Work it out without running a BN layer.


# %%
def my_eval_after_k_steps(x, k, momentum):
    raise NotImplementedError


exercises.check_eval_after_k_steps(my_eval_after_k_steps)

# %% [markdown]
# **Exercise 6: Ghost Batch Normalization by hand** (Hoffer, Hubara & Soudry 2017). Split
# the batch `x` (N, C) into `num_splits` equal consecutive chunks and normalize each with its
# own statistics (gamma 1, beta 0). Ghost BN keeps the noise of small batches while training
# with large ones.


# %%
def my_ghost_bn(x, num_splits, eps):
    raise NotImplementedError


exercises.check_ghost_bn(my_ghost_bn)

# %% [markdown]
# **Exercise 7: convolutional statistics.** For `x` (N, C, H, W) return `(mu, var)`, each
# (C,): the per-channel mean and biased variance that `BatchNorm2d` uses.


# %%
def my_conv_stats(x):
    raise NotImplementedError


exercises.check_conv_stats(my_conv_stats)

# %% [markdown]
# ## 10. FAQ
#
# **Why keep running mean and variance during training?** Evaluation must not depend on the
# other examples in a batch (4.2, 5.1); the running estimates are the population statistics
# of Algorithm 2, accumulated for free during training.
#
# **What happens with batch size 1?** It depends on how many values each channel gets.
# `BatchNorm1d` on a (1, C) batch in training has one value per channel: the variance is
# zero, and PyTorch and bnlab refuse it. `BatchNorm2d` on one image (1, C, H, W) trains: each
# channel's statistics are over its H x W positions (5.2). With two values per channel every
# output is +-1. In evaluation any batch size is fine: the running statistics are used. For
# tiny training batches prefer GroupNorm or LayerNorm (5.2 measures LayerNorm against BN),
# or accumulate statistics across devices (SyncBN).
#
# **Why gamma and beta if we normalize anyway?** So that BN can represent the identity and
# any other scale and shift (Section 2); normalization alone would pin every unit to mean 0,
# variance 1.
#
# **Does `torch.no_grad()` stop running statistics from updating?** No (5.6): only
# `model.eval()` does. Evaluating in training mode therefore writes the test set into the
# running statistics (5.1).
#
# **How do I know my evaluation is honest?** In eval mode the accuracy must not depend on
# the evaluation batch size, and no running statistic may move while evaluating: the
# invariant cells assert both.
#
# **Before or after the activation?** The paper and the explainer put it before; 5.3
# measures both on the paper's net and prints which won there, beside the lab's full-scale
# comparison. Either way, drop the bias of the layer before BN (5.5).
#
# **Which momentum?** PyTorch 0.1 is Keras/TF 0.9; Keras's default 0.99 is PyTorch 0.01. The
# explainer's range 0.9-0.999 is in Keras's convention (5.4).
#
# **Does BN reduce internal covariate shift?** Two definitions, two answers, both measured
# with their sign: Ioffe & Szegedy's stable input percentiles (4.4) and Santurkar et al.'s
# gradient change (Section 8), whose explanation is a smoother landscape.
#
# **Why insist on a control that trains?** Against a baseline stuck on its starting plateau
# every method looks good. Started at the preset's std 0.01, the network without BN is
# still at chance after 500 steps (8.1's init grid); comparing BN with it in a short run
# would measure the plateau, not BN (4.3 starts both at std 0.1 instead).
#
# **How do I make inference cheaper?** Fold BN into the previous layer (6.2).
#
# ## Summary
#
# - BN normalizes each unit (each channel, for conv layers) with the mini-batch's mean and
#   biased variance, then scales and shifts with learned gamma and beta; inference uses
#   running estimates with Bessel's correction.
# - Its backward pass couples every example in the batch through the mean and variance; the
#   staged and fused forms agree with autograd and with finite differences.
# - Every effect above is measured with n and a CI against a control that trains, beside
#   the lab's full-scale number for the same claim; the claims table gives each of the
#   explainer's claims its number, n, CI and setting.
# - Most BN bugs are about state: eval mode, batch size, momentum conventions, stale
#   statistics after a domain shift. The invariant cells catch the ones that leak.

# %%
print(f"notebook executed in {time.perf_counter() - NOTEBOOK_START:.0f} s")
store.close()
shutil.rmtree(WORK)
