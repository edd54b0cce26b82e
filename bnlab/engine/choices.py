"""What the command line offers, importable without torch (`bnlab train --help` is answered
before anything heavy loads): names, the executor flags, and the help layout.

The preset names are repeated here from `bnlab.engine.presets.PRESETS`, which builds
configs and so imports torch; tests/test_cli_help.py fails when the two differ.
"""

from __future__ import annotations

import argparse

PRESET_NAMES = (
    "ioffe2015-mnist",
    "mnist-notebook",
    "optstudy-mlp",
    "optstudy-convmlp",
    "cifar10-cnn",
    "smoke",
    "santurkar2018-vgg",
    "santurkar2018-mnist",
    "santurkar2018-deep-linear",
    "santurkar2018-noisy-bn",
)
DEVICES = ("auto", "cpu", "cuda")  # auto: CUDA when present, else the CPU
EXECUTORS = ("local", "ray")
INSTALL_HINT = "pip install 'bnlab[ray]'"


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """--executor, --ray-address, --ray-cpus, --ray-gpus."""
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help=f"where stacks train: this process (local) or Ray tasks (ray; {INSTALL_HINT})",
    )
    parser.add_argument(
        "--ray-address",
        help="an existing Ray cluster, e.g. ray://HEAD:10001 (default: $RAY_ADDRESS, "
        "else a local Ray instance)",
    )
    parser.add_argument("--ray-cpus", type=float, default=1.0, help="CPUs per Ray task")
    parser.add_argument("--ray-gpus", type=float, default=0.0, help="GPUs per Ray task")


class HelpFormatter(argparse.HelpFormatter):
    """argparse's layout, except that an epilog of examples keeps its lines as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(("example:", "examples:")):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)
