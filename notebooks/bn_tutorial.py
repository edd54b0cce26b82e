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
# be measured here, the notebook says so and why.
#
# **Contents**
#
# 1. Objectives and set-up
# 2. The concept and the math (Algorithms 1 and 2, gamma and beta, BN for conv layers)
# 3. Implementation deep dive (`bnlab.reference`: forward, staged and fused backward,
#    autograd, finite differences)
# 4. Experiments and pictures (distributions per layer, train vs eval, MNIST over seeds,
#    Ioffe & Szegedy Fig. 1(b, c))
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
#   measured effect, n and confidence interval.
#
# **Set-up.** From the repository root, `make notebook` installs `bnlab[notebook]` into the
# project's `.venv`, fetches MNIST into the bnlab cache (the same data `make test` uses) and
# executes this notebook. Nothing here needs a GPU or the network.

# %%
import copy
import inspect
import shutil
import tempfile
import time
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch import nn

import bnlab
from bnlab import data, exercises, reference
from bnlab.analysis import AnalysisProbe, ProbeConfig
from bnlab.engine import HookConfig, RunContext, Store, get_preset, train
from bnlab.report import (
    diff_ci,
    format_estimate,
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
# ## 4. Experiments and pictures
#
# ### 4.1 Pre- vs post-normalization distributions, per layer
#
# An MLP with three hidden layers of 100 sigmoid units (Ioffe & Szegedy's MNIST net), with
# `bnlab.BatchNorm1d` after each Linear layer, on a batch of 512 real MNIST digits. The
# Linear outputs (before BN) have whatever mean and spread the weights give them; after BN
# every unit has mean 0 and variance 1 over the batch.

# %%
mnist_train = data.load("mnist", "train")
mnist_x, mnist_y = data.to_tensor(mnist_train, "binarize", data.first_n(512))  # (512, 1, 28, 28)
mnist_x = mnist_x.flatten(1)  # (512, 784)


def ioffe_mlp(bn: bool, init_std: float = 0.1) -> nn.Sequential:
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
    return model


model = ioffe_mlp(bn=True)
captured = {}
for name, mod in model.named_modules():
    if isinstance(mod, nn.Linear | bnlab.BatchNorm1d):
        mod.register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, o.detach()))
with torch.no_grad():
    model(mnist_x)

fig, axes = plt.subplots(1, 3, figsize=(13, 3.2), sharey=True)
for layer, ax in enumerate(axes):
    pre, post = captured[str(3 * layer)], captured[str(3 * layer + 1)]  # Linear, then BN
    ax.hist(
        pre.flatten().numpy(), bins=80, alpha=0.6, density=True, label="before BN (Linear output)"
    )
    ax.hist(post.flatten().numpy(), bins=80, alpha=0.6, density=True, label="after BN")
    ax.set_title(f"hidden layer {layer + 1}: {pre.shape[1]} units x {pre.shape[0]} examples")
    ax.set_xlabel("pre-activation value (dimensionless)")
axes[0].set_ylabel("density (1 / unit of value)")
axes[0].legend(fontsize=8)
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
# Ioffe & Szegedy's Sec. 4.1 network (3 x 100 sigmoid, binarized MNIST, batch 60, SGD lr 0.5,
# init N(0, 0.01²)) trained by bnlab's engine: the BN network and its baseline, 3 seeds each,
# each stack as one vectorized computation. The project's full reproduction runs 50,000
# steps and 5 seeds (`make run`); here 2,000 steps keep the notebook fast. The same run
# records the Fig. 1(b, c) percentiles and, every 500 steps, the Santurkar et al. measures
# used in Section 8.

# %%
SEEDS, STEPS = 3, 2000
cfg = get_preset("ioffe2015-mnist")
cfg = replace(
    cfg,
    seeds=SEEDS,
    steps=STEPS,
    eval_every=100,
    checkpoint_every=STEPS,
    hooks=HookConfig(layers=("act3",), units=(0, 1, 2), every=50),
)
probe = AnalysisProbe(ProbeConfig(every=500, landscape=True, ics=True))
QUIET = RunContext(progress=False)  # no progress bars in a notebook
main_dir = tempfile.mkdtemp(prefix="bn_tutorial_", dir=WORK)
t0 = time.perf_counter()
train(cfg, main_dir, QUIET, probes=[probe])
print(f"trained 2 stacks x {SEEDS} seeds x {STEPS} steps in {time.perf_counter() - t0:.1f} s")

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

for norm in run_of:
    print(f"final test accuracy {NAMES[norm]:>10}: {pct(final_acc[norm], 2)}")
effect = diff_ci(final_acc["batch"], final_acc["none"], paired=True)
print(f"BN minus no BN, paired by seed: {points(effect, 2)}")

# %% [markdown]
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
# and unit, then the mean over units, then the CI over seeds.


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

# %% [markdown]
# A unit whose input distribution keeps moving forces the next layer to keep re-adapting;
# Section 8 asks whether removing that is why BN helps.
#
# ## 5. Pitfalls, each shown live
#
# The pitfalls use a small MLP on scikit-learn's 8x8 digits (bundled, always present;
# bnlab serves it as `data.load("digits")`), trained with plain PyTorch so that each
# pitfall is visible in a few lines.

# %%
digits_train, digits_test = data.load("digits", "train"), data.load("digits", "test")
dx_train, dy_train = data.to_tensor(digits_train, "standardize")
dx_test, dy_test = data.to_tensor(digits_test, "standardize")
dx_train, dx_test = dx_train.flatten(1), dx_test.flatten(1)  # (1500, 64), (297, 64)
print(f"digits: {len(dy_train)} training and {len(dy_test)} test images of 64 pixels")


def digits_mlp(
    seed: int, bn: bool = True, bias: bool = True, momentum: float = 0.1
) -> nn.Sequential:
    torch.manual_seed(seed)
    layers = []
    for width_in, width_out in ((64, 64), (64, 64)):
        layers.append(nn.Linear(width_in, width_out, bias=bias))
        if bn:
            layers.append(bnlab.BatchNorm1d(width_out, momentum=momentum))
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


models = [fit(digits_mlp(seed), dx_train, dy_train, seed=seed) for seed in range(SEEDS)]

# %% [markdown]
# ### 5.1 Forgetting `model.eval()`
#
# Wrong: predicting in training mode. Each test batch is normalized with its own statistics,
# so a prediction depends on which other examples share its batch, and small batches are
# noisy. Right: `model.eval()` uses the running statistics.

# %%
x_288, y_288 = dx_test[:288], dy_test[:288]  # 288 test images: divisible by every batch size below
for batch in (4, 16, 288):
    wrong = [accuracy(m.train(), x_288, y_288, batch) for m in models]
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
for m in models:
    m.eval()

# %% [markdown]
# ### 5.2 Batch size 1 and small batches
#
# With one example per channel, the batch variance is 0 and $\hat{x}$ is 0/0 in the limit:
# training on it is meaningless. PyTorch and bnlab refuse it in training mode (bnlab before
# changing any state). Small batches are allowed but noisy: the statistics of 2 or 4
# examples are poor estimates of the population's.

# %%
try:
    bnlab.BatchNorm1d(64).train()(torch.randn(1, 64))
except ValueError as err:
    print("batch of 1 in training mode ->", type(err).__name__ + ":", err)

examples = 6400  # the same number of training examples for every batch size
for batch in (2, 4, 16, 64):
    accs = []
    for seed in range(SEEDS):
        mdl = fit(
            digits_mlp(seed),
            dx_train,
            dy_train,
            steps=examples // batch,
            batch=batch,
            lr=0.05 * batch / 64,
            seed=seed,
        )  # lr scaled with the batch (linear rule)
        accs.append(accuracy(mdl.eval(), dx_test, dy_test))
    print(f"batch {batch:2d} ({examples // batch:4d} steps): eval test accuracy {pct(accs)}")

# %% [markdown]
# ### 5.3 BN before vs after the activation
#
# Ioffe & Szegedy put BN before the nonlinearity ($g(\mathrm{BN}(Wu))$); many codebases put
# it after. With bnlab's engine it is one config field. Same MNIST protocol as 4.3, BN
# placed after the sigmoid, compared seed by seed with the "before" stack trained above:

# %%
after_dir = tempfile.mkdtemp(prefix="bn_after_", dir=WORK)
cfg_after = replace(
    cfg, norms=("batch",), hooks=HookConfig(), model=replace(cfg.model, norm_position="after")
)
train(cfg_after, after_dir, QUIET)
after_store = Store(after_dir)
_, acc_after = after_store.metric_matrix(after_store.runs()[0]["run_id"], "test_accuracy")
print(f"BN before sigmoid: {pct(final_acc['batch'], 2)}")
print(f"BN after sigmoid:  {pct(acc_after[:, -1], 2)}")
print(
    "before minus after, paired:",
    points(diff_ci(final_acc["batch"], acc_after[:, -1], paired=True), 2),
)
after_store.close()

# %% [markdown]
# ### 5.4 Momentum conventions: PyTorch 0.1 is Keras/TensorFlow 0.99... almost
#
# PyTorch: $\text{running} \leftarrow (1 - m)\,\text{running} + m\,\text{batch}$ with
# $m = 0.1$. Keras/TF: $\text{running} \leftarrow m\,\text{running} + (1 - m)\,\text{batch}$
# with $m = 0.99$. So Keras's 0.99 is PyTorch's 0.01, and copying `momentum=0.99` from a
# Keras model into PyTorch (wrong) makes the running mean follow the *last* batch:

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
# The digits models were trained on standardized inputs. New domain: the same images with
# lower contrast and a brightness offset ($0.5x + 1$). We compare, over 3 seeds:
# (a) the model as is, (b) only re-estimating the running statistics on the new training
# images (no weight change; "AdaBN"), (c) fine-tuning 100 steps with BN in eval mode
# (statistics frozen at the old domain), (d) fine-tuning 100 steps in training mode
# (statistics updating).


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


results = {
    "(a) as is": [],
    "(b) re-estimate statistics only": [],
    "(c) fine-tune, statistics frozen": [],
    "(d) fine-tune, statistics updating": [],
}
for m in models:
    results["(a) as is"].append(accuracy(copy.deepcopy(m).eval(), new_test, dy_test))
    results["(b) re-estimate statistics only"].append(
        accuracy(reestimate_stats(copy.deepcopy(m), new_train), new_test, dy_test)
    )
    results["(c) fine-tune, statistics frozen"].append(
        accuracy(finetune(copy.deepcopy(m), True), new_test, dy_test)
    )
    results["(d) fine-tune, statistics updating"].append(
        accuracy(finetune(copy.deepcopy(m), False), new_test, dy_test)
    )
print(f"original domain, eval mode: {pct([accuracy(m, dx_test, dy_test) for m in models])}")
for name, accs in results.items():
    print(f"shifted domain, {name:36s}: {pct(accs)}")

# %% [markdown]
# Compare (a) with (b): the gap is what stale statistics alone cost, since (b) changes no
# weight. Frozen statistics, (c), are the usual choice when the new data resembles the old
# and fine-tuning batches are small (detection models fine-tune that way); when the input
# distribution shifts, re-estimating the statistics is the cheap first step.
#
# ## 6. Practical application
#
# ### 6.1 A tabular task: unscaled features
#
# scikit-learn's bundled breast-cancer data: 569 tumours, 30 features on very different
# scales (from about 0.001 to a few thousand). An MLP without BN on the raw features fights
# the scales; BN after each Linear layer (and on the input) normalizes them on the fly.
# 5 seeds, a fixed 70/30 split.

# %%
cancer = load_breast_cancer()
xa_tr, xa_te, ya_tr, ya_te = train_test_split(
    cancer.data, cancer.target, test_size=0.3, random_state=0, stratify=cancer.target
)
xa_tr, xa_te = torch.tensor(xa_tr, dtype=torch.float32), torch.tensor(xa_te, dtype=torch.float32)
ya_tr, ya_te = torch.tensor(ya_tr), torch.tensor(ya_te)
print(
    f"feature values in the training data: min {xa_tr.min().item():.4f}, "
    f"max {xa_tr.max().item():.1f}"
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


tab = {True: [], False: []}
for seed in range(5):
    for bn in (True, False):
        mdl = fit(tabular_mlp(seed, bn), xa_tr, ya_tr, steps=300, batch=32, lr=0.01, seed=seed)
        tab[bn].append(accuracy(mdl.eval(), xa_te, ya_te))
print(f"test accuracy with BN:    {pct(tab[True])}")
print(f"test accuracy without BN: {pct(tab[False])}")
print(f"BN minus no BN, paired:   {points(diff_ci(tab[True], tab[False], paired=True))}")

# %% [markdown]
# (Standardizing the features once, e.g. with `sklearn.preprocessing.StandardScaler`, is the
# cheaper fix for the input; BN also keeps the hidden layers' scales in check.)
#
# ### 6.2 A small CNN, and folding BN for inference
#
# Two conv blocks (3x3 conv, `bnlab.BatchNorm2d`, ReLU, 2x2 max-pool) on the 8x8 digits.


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
cnn = {True: [], False: []}
cnns = []
for seed in range(SEEDS):
    for bn in (True, False):
        mdl = fit(small_cnn(seed, bn), img_train, dy_train, steps=200, batch=64, lr=0.05, seed=seed)
        cnn[bn].append(accuracy(mdl.eval(), img_test, dy_test))
        if bn:
            cnns.append(mdl)
print(f"CNN test accuracy with BN:    {pct(cnn[True])}")
print(f"CNN test accuracy without BN: {pct(cnn[False])}")

# %% [markdown]
# **Folding.** In eval mode BN is a fixed per-channel affine map,
# $y = s \odot z + t$ with $s = \gamma / \sqrt{\mathrm{running\_var} + \epsilon}$ and
# $t = \beta - s \odot \mathrm{running\_mean}$. If $z = Wx + b$, the two compose into one
# layer: $W' = s \odot W$ (row by row), $b' = s \odot b + t$. `bnlab.fold_batchnorm` returns
# an eval-mode copy with every BN folded into its Conv/Linear:

# %%
trained = cnns[0].eval()
folded = bnlab.fold_batchnorm(trained)
print(folded)
with torch.no_grad():
    print(
        "max |folded - unfolded| logits on the test set:",
        f"{(folded(img_test) - trained(img_test)).abs().max().item():.1e}",
    )


def median_ms(fn, repeats=50):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


with torch.no_grad():
    t_unfolded, t_folded = median_ms(lambda: trained(img_test)), median_ms(lambda: folded(img_test))
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
# `benchmarks/bn_op.py` is the full benchmark.


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
# ("loss variation") and the gradient stays more predictive (effective
# $\beta$-smoothness).
#
# The MNIST run of 4.3 measured both every 500 steps with `bnlab.analysis`, for every
# member. Per seed we average over the probe points after step 0, then compare BN with the
# baseline, paired by seed. The first layer, fc1, has no earlier layer to shift its input,
# so its ICS is 0 by definition and is left out.


# %%
def per_seed(norm, name):
    steps, v = store.metric_matrix(run_of[norm], name)  # (T,), (K, T)
    keep = steps > 0  # skip step 0: before any training, both nets are at their init
    return np.nanmean(v[:, keep], axis=1)  # (K,)


layers = ["fc2", "fc3", "out"]  # fc1: ICS is 0 by definition
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
for i, norm in enumerate(("batch", "none")):
    est = [mean_ci(per_seed(norm, f"ics_l2/{layer}")) for layer in layers]
    xs = np.arange(len(layers)) + (i - 0.5) * 0.3
    axes[0].errorbar(
        xs,
        [e.mean for e in est],
        yerr=[e.half_width for e in est],
        fmt="o",
        capsize=4,
        label=NAMES[norm],
    )
axes[0].set_xticks(np.arange(len(layers)), layers)
axes[0].set_xlabel("weight layer")
axes[0].set_ylabel("ICS: ||G - G'|| (l2 norm of gradient change)")
axes[0].set_yscale("log")
axes[0].set_title("Santurkar ICS (lower = less shift), 95% CI")
for ax, name, label in (
    (axes[1], "landscape/loss_variation", "loss variation along the gradient (nats)"),
    (axes[2], "landscape/beta_smoothness", "effective beta-smoothness (1/step)"),
):
    for i, norm in enumerate(("batch", "none")):
        steps, v = store.metric_matrix(run_of[norm], name)
        mean, low, high = mean_ci_band(v)
        ax.errorbar(
            steps + (i - 0.5) * 40,
            mean,
            yerr=[mean - low, high - mean],
            fmt="o-",
            capsize=4,
            label=NAMES[norm],
        )
    ax.set_xlabel("training step (SGD updates)")
    ax.set_ylabel(label)
    ax.set_yscale("log")
    ax.set_title(name.split("/")[1].replace("_", " ") + " (lower = smoother), 95% CI")
for ax in axes:
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

debate = {}
for name in ["ics_l2/fc2", "ics_l2/fc3", "landscape/loss_variation", "landscape/beta_smoothness"]:
    bn_v, base_v = per_seed("batch", name), per_seed("none", name)
    ratio = mean_ci(np.log10(bn_v) - np.log10(base_v))  # paired by seed: log10(BN / baseline)
    debate[name] = ratio
    print(
        f"{name:27s}: BN {mean_ci(bn_v).mean:.3g}, baseline {mean_ci(base_v).mean:.3g}; "
        f"log10(BN / baseline) = {format_estimate(ratio, 2)}"
    )

# %% [markdown]
# Read the signs: a negative log-ratio means BN's value is smaller. These are absolute
# quantities: a baseline that is still on its flat starting plateau (check its accuracy at
# the probe steps, printed below) has tiny gradients, so small baseline numbers there mean
# "not moving", not "smooth". Santurkar et al. compare networks that both train; the
# project's full runs (`bnlab reproduce santurkar2018-landscape`, `santurkar2018-ics`; see
# the README's ["Why does BN help?"](../README.md#why-does-bn-help-santurkar-et-al-2018-as-tools)
# section) measure the same quantities over longer training and on a VGG-style CNN.

# %%
for norm in ("batch", "none"):
    steps, acc = store.metric_matrix(run_of[norm], "test_accuracy")
    at = [int(np.flatnonzero(steps == s)[0]) for s in (500, 1000, 1500)]
    print(
        f"{NAMES[norm]:>10}: test accuracy (%) at steps 500 / 1000 / 1500, mean over seeds:",
        np.round(100 * acc[:, at].mean(0), 1),
    )
#
# ### 8.1 The explainer's claims table, measured
#
# The explainer this tutorial grew from lists BN's benefits as a table. Each claim next to
# what bnlab measured in this notebook (n seeds, 95% CI), or why it is not measured here. Two
# more small engine runs first: a learning-rate grid and an init-scale grid (500 steps each,
# 3 seeds, same net and data).

# %%
short = replace(cfg, steps=500, eval_every=500, checkpoint_every=500, hooks=HookConfig())
LRS = (0.05, 0.5, 5.0, 50.0)
lr_dir = tempfile.mkdtemp(prefix="bn_lr_", dir=WORK)
train(replace(short, optim=replace(short.optim, lrs=LRS)), lr_dir, QUIET)
lr_store = Store(lr_dir)
highest = {}
for run in lr_store.runs():
    _, acc = lr_store.metric_matrix(run["run_id"], "test_accuracy")  # (K,) members = seeds x lrs
    acc = np.nan_to_num(acc[:, -1].reshape(SEEDS, len(LRS)), nan=0.0)  # (seeds, lrs)
    trained_ok = acc > 0.5  # "trained": more than half the test set right after 500 steps
    highest[run["norm"]] = [
        max((lr for lr, ok in zip(LRS, row, strict=True) if ok), default=None) for row in trained_ok
    ]
    print(
        f"{NAMES[run['norm']]:>10}: test accuracy (%) per lr {LRS}, mean over seeds:",
        np.round(100 * acc.mean(0), 1),
    )
lr_store.close()

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


# %%
def steps_to(norm, threshold):
    steps, acc = store.metric_matrix(run_of[norm], "test_accuracy")
    return [steps_to_accuracy(steps, row, threshold) for row in acc]


def verdict(est):
    """Words for the sign of an effect: only a CI that excludes 0 counts."""
    if est.high < 0:
        return "BN lower: reduced"
    if est.low > 0:
        return "BN higher: not reduced"
    return "CI includes 0: inconclusive"


THRESHOLD = 0.9
bn_steps, base_steps = steps_to("batch", THRESHOLD), steps_to("none", THRESHOLD)
if all(s is not None for s in bn_steps + base_steps):
    speed = mean_ci(np.array(base_steps) / np.array(bn_steps))
    speed_text = (
        f"baseline / BN steps to {THRESHOLD:.0%} test accuracy: {format_estimate(speed, 1, 1, 'x')}"
    )
else:
    reached = sum(s is not None for s in base_steps)
    bn_reached = [s for s in bn_steps if s is not None]
    speed_text = (
        f"BN reached {THRESHOLD:.0%} test accuracy in "
        f"{format_estimate(mean_ci(bn_reached), 0, 1, ' steps')} ({len(bn_reached)}/{SEEDS} "
        f"seeds); the baseline in {reached}/{SEEDS} seeds within {STEPS} steps, so the "
        f"speed-up is at least {STEPS / max(bn_reached):.1f}x here, not a finite ratio"
    )

if all(h is not None for h in highest["batch"] + highest["none"]):
    lr_ratio = mean_ci(np.log10(highest["batch"]) - np.log10(highest["none"]))
    lr_text = (
        f"log10(highest trainable lr, BN / baseline) = {format_estimate(lr_ratio, 2)} "
        f"(grid {LRS}; 1.0 = 10x)"
    )
else:
    lr_text = (
        f"highest trainable lr per seed (grid {LRS}, 500 steps): BN {highest['batch']}, "
        f"baseline {highest['none']} (None: trained at no rate)"
    )

spread_bn = init_acc["batch"].max(1) - init_acc["batch"].min(
    1
)  # (seeds,) accuracy range over inits
spread_base = init_acc["none"].max(1) - init_acc["none"].min(1)
init_text = (
    f"range of test accuracy over init std {INITS}: BN {points(mean_ci(spread_bn))}, "
    f"baseline {points(mean_ci(spread_base))}"
)

rows = [
    ("2-5x faster training", speed_text),
    (
        "+7% accuracy (85% to 92%)",
        f"final test accuracy after {STEPS} steps, BN minus baseline: "
        f"{points(effect, 2)} (BN {pct(final_acc['batch'])}, baseline "
        f"{pct(final_acc['none'])}). The gap depends on the budget; the full 50,000-step run "
        "is in `make run`'s report",
    ),
    ("10x+ learning-rate tolerance", lr_text),
    (
        "reduces initialization sensitivity",
        init_text + f" ({verdict(diff_ci(spread_bn, spread_base, paired=True))})",
    ),
    (
        "reduces internal covariate shift",
        f"Ioffe's sense (4.4), percentile drift BN minus baseline: "
        f"{format_estimate(drift_effect, 3)} ({verdict(drift_effect)}); "
        f"Santurkar's sense (Section 8), ICS l2 of layer fc3, log10(BN / baseline): "
        f"{format_estimate(debate['ics_l2/fc3'], 2)} ({verdict(debate['ics_l2/fc3'])})",
    ),
    (
        "regularization effect, reduces overfitting",
        "not measured here: needs long training to the point of "
        "overfitting and a held-out comparison at convergence, beyond a minutes-long notebook",
    ),
    (
        "prevents vanishing gradients in deep networks",
        "not measured here: see `bnlab reproduce "
        "santurkar2018-deep-linear` (25-layer network) for the project's measurement",
    ),
]
table = "| claim (explainer) | measured by bnlab in this notebook (95% CI, n seeds) |\n|---|---|\n"
table += "\n".join(f"| {claim} | {text} |" for claim, text in rows)
display(Markdown(table))

# %% [markdown]
# A claim measured on one network, one dataset and a few seeds is evidence about that
# setting, not a law: the explainer's numbers come with no setting at all. The project's
# full-length results for the Ioffe net (5 seeds, 50,000 steps, with the paper's numbers and
# verdicts) are in the report `make run` writes to `results/reproduce/report.html`.
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
# **What happens with batch size 1?** In training the batch variance is zero and the
# normalized value undefined: PyTorch and bnlab refuse it (5.2). In evaluation batch size 1
# is fine: running statistics are used. For tiny training batches prefer GroupNorm or
# LayerNorm, or accumulate statistics across devices (SyncBN).
#
# **Why gamma and beta if we normalize anyway?** So that BN can represent the identity and
# any other scale and shift (Section 2); normalization alone would pin every unit to mean 0,
# variance 1.
#
# **Does `torch.no_grad()` stop running statistics from updating?** No (5.6): only
# `model.eval()` does.
#
# **Before or after the activation?** The paper puts it before; 5.3 measures both on the
# paper's net. Either way, drop the bias of the layer before BN (5.5).
#
# **Which momentum?** PyTorch 0.1 is Keras/TF 0.9; Keras's default 0.99 is PyTorch 0.01
# (5.4).
#
# **Does BN reduce internal covariate shift?** In Ioffe & Szegedy's sense (stable input
# percentiles), yes (4.4). In Santurkar et al.'s gradient-based sense, not necessarily
# (Section 8); their explanation is a smoother landscape.
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
# - On the paper's MNIST net every effect above is measured with n and a CI, and the claims
#   table says which of the explainer's claims held in this setting and which were not
#   measured.
# - Most BN bugs are about state: eval mode, batch size, momentum conventions, stale
#   statistics after a domain shift.

# %%
print(f"notebook executed in {time.perf_counter() - NOTEBOOK_START:.0f} s")
store.close()
shutil.rmtree(WORK)
