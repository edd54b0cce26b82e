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
# # Solutions to the exercises of the BN tutorial
#
# Worked answers to Section 9 of [bn_tutorial.ipynb](bn_tutorial.ipynb). Try each exercise
# there first. Every solution is graded by the same checker the tutorial uses
# (`bnlab.exercises`), and this notebook fails if one does not pass, so the answers here
# are tested every time CI runs.

# %%
import numpy as np
import torch
from torch import nn

from bnlab import exercises

results = []

# %% [markdown]
# **Exercise 1: forward pass.** Statistics over every axis but the channel axis (1), so a
# conv input (N, C, H, W) has m = N·H·W values per channel. The variance is the biased one
# (divide by m).


# %%
def my_forward(x, gamma, beta, eps):
    axes = (0, *range(2, x.ndim))  # every axis but the channel axis
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)  # (C,) -> (1, C, 1..)
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)  # biased: 1/m
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma.reshape(shape) * x_hat + beta.reshape(shape)


results.append(exercises.check_forward(my_forward))
results[-1]

# %% [markdown]
# **Exercise 2: the backward pass**, fused (the bars are means over the batch):
#
# $$dx = \frac{\gamma}{\sqrt{\sigma^2 + \epsilon}}\,
#   (dy - \overline{dy} - \hat{x}\,\overline{dy\,\hat{x}})$$


# %%
def my_backward(dy, x, gamma, eps):
    mu = x.mean(0)
    var = x.var(0)  # biased
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv_std
    dbeta = dy.sum(0)
    dgamma = (dy * x_hat).sum(0)
    dx = gamma * inv_std * (dy - dy.mean(0) - x_hat * (dy * x_hat).mean(0))
    return dx, dgamma, dbeta


results.append(exercises.check_backward(my_backward))
results[-1]

# %% [markdown]
# **Exercise 3: running statistics.** PyTorch weighs the *batch* by `momentum`; the running
# variance estimates the population variance, so the batch's biased variance gets Bessel's
# correction m/(m-1).


# %%
def my_running_stats(running_mean, running_var, mu, var, m, momentum):
    new_mean = (1 - momentum) * running_mean + momentum * mu
    new_var = (1 - momentum) * running_var + momentum * var * m / (m - 1)
    return new_mean, new_var


results.append(exercises.check_running_stats(my_running_stats))
results[-1]

# %% [markdown]
# **Exercise 4: folding.** scale = gamma / sqrt(running_var + eps), shift = beta - scale ·
# running_mean; W' = scale · W (row by row), b' = scale · b + shift.


# %%
def my_fold(linear, bn):
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    shift = bn.bias - scale * bn.running_mean
    folded = nn.Linear(linear.in_features, linear.out_features).to(linear.weight.dtype)
    with torch.no_grad():
        folded.weight.copy_(linear.weight * scale[:, None])  # (C_out, C_in)
        folded.bias.copy_(scale * linear.bias + shift)
    return folded


results.append(exercises.check_fold(my_fold))
results[-1]

# %% [markdown]
# **Exercise 5: eval output after k steps.** The running mean starts at 0 and the running
# variance at 1; each step moves them a fraction `momentum` towards the batch's mean and
# *unbiased* variance. With the same batch every time, after k steps a fraction
# $(1 - \text{momentum})^k$ of the starting value is left.


# %%
def my_eval_after_k_steps(x, k, momentum):
    m = x.shape[0]
    left = (1 - momentum) ** k  # weight still on the initial 0 / 1
    running_mean = (1 - left) * x.mean(0)
    running_var = left * 1.0 + (1 - left) * x.var(0) * m / (m - 1)
    return (x - running_mean) / np.sqrt(running_var + 1e-5)


results.append(exercises.check_eval_after_k_steps(my_eval_after_k_steps))
results[-1]

# %% [markdown]
# **Exercise 6: Ghost BN.** Normalize each chunk on its own and put the chunks back in order.


# %%
def my_ghost_bn(x, num_splits, eps):
    chunks = np.split(x, num_splits)  # num_splits arrays of (N / num_splits, C)
    return np.concatenate([(c - c.mean(0)) / np.sqrt(c.var(0) + eps) for c in chunks])


results.append(exercises.check_ghost_bn(my_ghost_bn))
results[-1]

# %% [markdown]
# **Exercise 7: convolutional statistics.** Reduce over N, H and W.


# %%
def my_conv_stats(x):
    return x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))  # (C,), (C,); var biased


results.append(exercises.check_conv_stats(my_conv_stats))
results[-1]

# %%
for r in results:
    print(r)
failed = [r.exercise for r in results if not r.passed]
assert not failed, f"solutions that do not pass their checker: {failed}"
print(f"all {len(results)} solutions pass")
