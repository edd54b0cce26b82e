"""Named configurations, each named after the experiment it reproduces.

Every preset trains one stack per entry of `norms`; with the default ("batch", "none") that
is the BN network and its baseline, side by side, over `seeds` seeds each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from bnlab.engine.config import (
    ConfigError,
    DataConfig,
    HookConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)
from bnlab.errors import did_you_mean


def ioffe2015_mnist() -> TrainConfig:
    """Ioffe & Szegedy 2015, Sec. 4.1 / Fig. 1: a 3x100 sigmoid MLP on MNIST, with and without BN.

    From the paper: "a 28x28 binary image as input", "3 fully-connected hidden layers with
    100 activations each", y = g(Wu + b) with sigmoid g, "weights W initialized to small random
    Gaussian values", a 10-way softmax with cross-entropy, "50000 steps, with 60 examples per
    mini-batch", and BN added to each hidden layer (before the sigmoid, Sec. 3.1/3.2, so those
    layers drop their bias: beta takes its role). The output layer keeps its bias.

    Choices the paper leaves open, documented here and overridable with --set:
    - binarization: pixel > 127 -> 1 (`transform=binarize`), the usual reading of "binary image";
    - init std 0.01 for "small random Gaussian values" (weights and biases: bias 0);
    - plain SGD (the optimizer is not named in Sec. 4.1), no momentum, no weight decay;
    - lr 0.5: large enough that the baseline makes progress in 50k steps despite the small
      init, and stable for both networks (the lr sweep in `ioffe2015-lr` tests the range);
    - Fig. 1(b, c) percentiles are recorded on the last hidden layer's sigmoid input (act3).
    """
    return TrainConfig(
        preset="ioffe2015-mnist",
        model=ModelConfig(
            hidden=(100, 100, 100), activation="sigmoid", init="gaussian", init_std=0.01
        ),
        data=DataConfig(dataset="mnist", transform="binarize"),
        optim=OptimConfig(name="sgd", lr=0.5),
        hooks=HookConfig(layers=("act3",), units=(0, 1, 2, 3, 4), every=100),
        batch_size=60,
        steps=50_000,
        eval_every=500,
        checkpoint_every=5_000,
    )


def mnist_notebook() -> TrainConfig:
    """The notebook seed's protocol: MNIST 5,000 train / 1,000 test images, MLP 784-128-64-10
    with ReLU, Adam lr 1e-3, batch 60, 10 epochs, validation accuracy every epoch.

    The subsets are the first 5,000 / 1,000 images of each split; inputs are scaled to
    [-1, 1] as the notebook's Normalize((0.5,), (0.5,)); init is PyTorch's default. The
    notebook's DataLoader keeps the last partial batch: 84 steps per epoch, the last of
    20 images (5,000 = 83 x 60 + 20), which BN normalizes over those 20.
    """
    return TrainConfig(
        preset="mnist-notebook",
        model=ModelConfig(hidden=(128, 64), activation="relu", init="torch-default"),
        data=DataConfig(dataset="mnist", transform="pm1", train_subset=5_000, test_subset=1_000),
        optim=OptimConfig(name="adam", lr=1e-3),
        batch_size=60,
        drop_last=False,  # DataLoader(batch_size=60, shuffle=True) keeps it
        epochs=10,
        eval_every=0,
        checkpoint_every=500,
    )


def optstudy_mlp() -> TrainConfig:
    """The optimization-study seed's MLP 512-256-128 (ReLU) on Fashion-MNIST, SGD, batch 128
    (the seed's Notes: "Batch size: typically 128")."""
    return TrainConfig(
        preset="optstudy-mlp",
        model=ModelConfig(hidden=(512, 256, 128), activation="relu", init="torch-default"),
        data=DataConfig(dataset="fashion-mnist"),
        optim=OptimConfig(name="sgd", lr=0.01, momentum=0.9),
        batch_size=128,  # optimization-study seed, Notes
        epochs=5,
        eval_every=0,
        checkpoint_every=1_000,
    )


def optstudy_convmlp() -> TrainConfig:
    """The optimization-study seed's ConvMLP: conv 32, 64 (3x3, max-pool) + MLP 512-256-128,
    SGD, batch 128 (the seed's Notes: "Batch size: typically 128")."""
    return TrainConfig(
        preset="optstudy-convmlp",
        model=ModelConfig(
            conv_channels=(32, 64), hidden=(512, 256, 128), activation="relu", init="torch-default"
        ),
        data=DataConfig(dataset="fashion-mnist"),
        optim=OptimConfig(name="sgd", lr=0.01, momentum=0.9),
        batch_size=128,  # optimization-study seed, Notes
        epochs=5,
        eval_every=0,
        checkpoint_every=500,
    )


def cifar10_cnn() -> TrainConfig:
    """The reproduction seed's SimpleCNN: 3 conv blocks 32/64/128 (conv3x3, BN2d, ReLU,
    max-pool), then 2048-128-10 (128 x 4 x 4 = 2048 for 32x32 inputs). SGD with momentum 0.9,
    weight decay 5e-4, random crop (pad 4) and horizontal flip."""
    return TrainConfig(
        preset="cifar10-cnn",
        model=ModelConfig(
            conv_channels=(32, 64, 128), hidden=(128,), activation="relu", init="torch-default"
        ),
        data=DataConfig(dataset="cifar10", augment=True),
        optim=OptimConfig(name="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4),
        batch_size=64,
        epochs=10,
        eval_every=0,
        checkpoint_every=500,
    )


def smoke() -> TrainConfig:
    """A seconds-long run on sklearn's 8x8 digits (always present): for tests and demos."""
    return TrainConfig(
        preset="smoke",
        model=ModelConfig(hidden=(32, 32), activation="sigmoid", init="gaussian", init_std=0.1),
        data=DataConfig(dataset="digits"),
        optim=OptimConfig(name="sgd", lr=0.5),
        hooks=HookConfig(layers=("act2",), units=(0, 1), every=10),
        batch_size=32,
        steps=60,
        eval_every=20,
        checkpoint_every=20,
    )


def santurkar2018_vgg() -> TrainConfig:
    """Santurkar et al. 2018, Sec. 2 / App. A: a VGG-style CNN on CIFAR-10, with and without BN.

    The paper trains VGG on the full CIFAR-10; here it is scaled to CPU: 6 conv layers
    16-16-32-32-64-64 in three stages of two (3x3 conv, norm, ReLU; 2x2 max-pool after each
    stage), then 128-10, on the 4,000/1,000-image CIFAR-10 subset that is present.
    Plain SGD at lr 0.1, the rate of the paper's Fig. 1 (which also shows 0.5), the same for
    both networks. No momentum: the landscape is probed along the gradient, which is then the
    direction each step moves. Batch 64, 1,000 steps (16 epochs of the subset), PyTorch's
    default init; test accuracy every 100 steps, where the Santurkar probes measure, so the
    report can show that both networks train at each probed step.
    """
    return TrainConfig(
        preset="santurkar2018-vgg",
        model=ModelConfig(
            conv_channels=(16, 16, 32, 32, 64, 64),
            pool_every=2,
            hidden=(128,),
            activation="relu",
            init="torch-default",
        ),
        data=DataConfig(dataset="cifar10"),
        optim=OptimConfig(name="sgd", lr=0.1),
        batch_size=64,
        steps=1_000,
        eval_every=100,
        checkpoint_every=250,
    )


def santurkar2018_mnist() -> TrainConfig:
    """The Ioffe & Szegedy MNIST net (3x100 sigmoid, SGD lr 0.5, batch 60; `ioffe2015-mnist`)
    as the cheap second setting of the Santurkar analyses, shortened to 5,000 steps and
    evaluated every 250 steps, where the probes measure."""
    return replace(
        ioffe2015_mnist(),
        preset="santurkar2018-mnist",
        steps=5_000,
        eval_every=250,  # at every probed step: does the baseline train there?
        checkpoint_every=1_000,
        hooks=HookConfig(),
    )


def santurkar2018_deep_linear() -> TrainConfig:
    """Santurkar et al. 2018, Sec. 2.2 / Fig. 5: a 25-layer deep linear network (24 hidden
    layers of 100 units, identity activation, then the output layer), with and without BN.

    Choices (not confirmed from the paper's appendix): MNIST as the data present, Gaussian init
    with std 0.1 (= 1/sqrt(100), so the hidden layers preserve scale), SGD lr 0.003, batch 60,
    2,000 steps. The rate: in a pilot sweep (lr 0.001, 0.003, 0.01, 0.03; 2 seeds, 2,000
    steps) the network without BN diverged at 0.01 and 0.03 in every seed and trained at
    0.001 and 0.003 (87-89% test accuracy); `santurkar2018-deep-linear` trains 0.001, 0.003
    and 0.01 and reads its verdict at the largest rate where no baseline seed diverged.
    """
    return TrainConfig(
        preset="santurkar2018-deep-linear",
        model=ModelConfig(hidden=(100,) * 24, activation="identity", init_std=0.1),
        data=DataConfig(dataset="mnist"),
        optim=OptimConfig(name="sgd", lr=0.003),
        batch_size=60,
        steps=2_000,
        eval_every=500,
        checkpoint_every=500,
    )


def santurkar2018_noisy_bn() -> TrainConfig:
    """Santurkar et al. 2018, Sec. 2.1 / Fig. 2: standard vs BN vs BN + per-step noise
    ("batch-noisy", bnlab.norms.noisy) on the CPU-sized VGG of `santurkar2018-vgg`.

    The input of an early and of the last conv layer's activation (act2, act6: after BN and
    the noise where they are used) is recorded every 50 steps: percentiles 5-95 of three
    channels, for the distribution figure (the paper's Fig. 2 shows layers 3 and 11 of its
    VGG) and the percentile drift.
    """
    return replace(
        santurkar2018_vgg(),
        preset="santurkar2018-noisy-bn",
        norms=("none", "batch", "batch-noisy"),
        hooks=HookConfig(
            layers=("act2", "act6"),
            units=(0, 1, 2),
            percentiles=(5.0, 25.0, 50.0, 75.0, 95.0),
            every=50,
        ),
    )


PRESETS: dict[str, Callable[[], TrainConfig]] = {
    "ioffe2015-mnist": ioffe2015_mnist,
    "mnist-notebook": mnist_notebook,
    "optstudy-mlp": optstudy_mlp,
    "optstudy-convmlp": optstudy_convmlp,
    "cifar10-cnn": cifar10_cnn,
    "smoke": smoke,
    "santurkar2018-vgg": santurkar2018_vgg,
    "santurkar2018-mnist": santurkar2018_mnist,
    "santurkar2018-deep-linear": santurkar2018_deep_linear,
    "santurkar2018-noisy-bn": santurkar2018_noisy_bn,
}


def get_preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise ConfigError(
            f"--preset: unknown preset {name!r}; {did_you_mean(name, PRESETS)}"
            f"expected one of {', '.join(PRESETS)}"
        )
    return PRESETS[name]()
