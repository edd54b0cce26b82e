"""`train-test-stats`: which statistics should a BN network use at test time, when it was
trained with small batches? (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", Sec. 3-4.)

The `small-batch` all-convolutional CNN is trained with BN at each batch size of
BATCH_SIZES; then its test accuracy is measured three ways, on the same weights:

- EMA: BN's running statistics, as training left them (the engine's usual evaluation);
- precise: population statistics recomputed after training by `bnlab.precise_bn`, an
  equal-weight average of per-batch statistics over PRECISE_IMAGES / B training batches of
  the training batch size (Wu & Johnson, Sec. 3);
- batch: each test batch of B images normalized with its own statistics, as in training
  (Sec. 4, the train-test inconsistency); the remainder of the test set that does not fill
  a batch is left out.

The two extra accuracies are stored next to the engine's metrics at the final step, as
`test_accuracy_precise` and `test_accuracy_batch_stats`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bnlab.engine import RunContext, Store, TrainConfig, build_stack, evaluate, lock
from bnlab.engine.context import resolve_device, torch_threads
from bnlab.engine.data import load_data
from bnlab.engine.models import StackedModel
from bnlab.engine.resume import load_latest
from bnlab.engine.runs import checkpoint_path, run_id
from bnlab.errors import ResultsNotFoundError
from bnlab.norms import precise_bn
from bnlab.report import ReportFigure, Role, Rule, Scale, Section, Table, claims, grid_points
from bnlab.reproduce import preregistered as pre
from bnlab.reproduce import small_batch
from bnlab.reproduce.common import (
    Part,
    Results,
    data_source,
    describe_runs,
    experiment_result,
    read_manifest,
    say,
    stored_configs,
    train_variants,
    vs_source,
)
from bnlab.reproduce.experiment import Experiment, ExperimentResult, Seeds, register
from bnlab.reproduce.scoring import fmt, scored

NAME = "train-test-stats"
BATCH_SIZES = (2, 4, 8, 16, 32)
QUICK_BATCH_SIZES = (2, 8)
PRECISE_IMAGES = 4_000  # images per precise-BN estimate (at most one epoch of the data)
PRECISE, BATCH_STATS = "test_accuracy_precise", "test_accuracy_batch_stats"
MODES = {"EMA": "test_accuracy", "precise": PRECISE, "batch statistics": BATCH_STATS}


PRIMARY_BATCH = 2  # the smallest batch: where the train-test inconsistency is largest
SECONDARY_BATCHES = (4, 8)  # declared, shown, not counted


def setting(batch: int) -> str:
    return f"{NAME}/B{batch}"


def rules(seeds: Seeds) -> tuple[Rule, ...]:
    """Per batch size (B=2 primary): precise vs EMA statistics (non-inferiority, 0.5 pp) and
    batch vs precise statistics (superiority), test accuracy in points, on networks that
    train (precise statistics at least 10 points above chance)."""
    n, out = pre.seeds_of(seeds, NAME), []
    for batch in (PRIMARY_BATCH, *SECONDARY_BATCHES):
        role = Role.PRIMARY if batch == PRIMARY_BATCH else Role.SECONDARY
        where, pp = setting(batch), Scale.DIFFERENCE
        out += [
            Rule(
                claims.PRECISE_BN_NOT_WORSE,
                where,
                pre.FINAL_ACCURACY,
                pp,
                0.5,
                n,
                (pre.TRAINS,),
                role,
                "EMA statistics",
                "precise statistics",
                first_seed=pre.first_seed(NAME),
            ),
            Rule(
                claims.BATCH_STATS_SMALL_BATCH,
                where,
                pre.FINAL_ACCURACY,
                pp,
                pre.ACCURACY_MARGIN,
                n,
                (pre.TRAINS,),
                role,
                "precise statistics",
                "batch statistics",
                first_seed=pre.first_seed(NAME),
            ),
        ]
    return tuple(out)


def config(seeds: int, quick: bool, batch: int) -> TrainConfig:
    cfg = small_batch.config(seeds, quick, batch)  # the same CNN, data, lr scaling, epochs
    return replace(cfg, preset=f"{NAME}-b{batch}", norms=("batch",), seed=pre.first_seed(NAME))


def cell_dir(out_dir: Path, batch: int) -> Path:
    return Path(out_dir) / f"batch{batch:03d}"


@torch.no_grad()
def batch_stats_accuracy(model: StackedModel, x: Tensor, y: Tensor, batch: int) -> Tensor:
    """(K,) accuracy with every test batch of `batch` images normalized by its own statistics;
    the running statistics are left as found."""
    saved = {name: b.clone() for name, b in model.named_buffers()}
    was_training = model.training
    model.train()
    K, used = model.members, (len(y) // batch) * batch
    correct = torch.zeros(K, dtype=model.flat.dtype, device=model.flat.device)
    for i in range(0, used, batch):
        xb = x[i : i + batch].to(model.flat.dtype)
        logits = model(xb.expand(K, *xb.shape))  # (K, B, classes)
        correct += (logits.argmax(-1) == y[i : i + batch]).to(correct.dtype).sum(1)
    model.train(was_training)
    for name, b in model.named_buffers():
        b.copy_(saved[name])
    return correct / used


def measure(cfg: TrainConfig, out: Path, ctx: RunContext) -> None:
    """Add the precise and batch-statistics accuracies of a trained stack (once), on the
    device of `ctx`."""
    rid = run_id(cfg, "batch")
    with lock.hold(out), Store(out, "w") as store:
        if store.metric_matrix(rid, PRECISE)[0].size:
            return  # measured by an earlier call
        data = load_data(cfg.data).to(resolve_device(ctx.device))
        stack = build_stack(cfg, "batch", data)
        stack.load_state_dict(load_latest(store, rid, checkpoint_path(out, rid)))
        model, dtype = stack.model, stack.model.flat.dtype
        by_batch = batch_stats_accuracy(model, data.x_test, data.y_test, cfg.batch_size)
        images = min(PRECISE_IMAGES, len(data.y_train))  # at most one epoch
        n = max(1, images // cfg.batch_size)
        precise_bn(model, (stack.batches.next()[0].to(dtype) for _ in range(n)), n)
        _, precise = evaluate(model, data.x_test, data.y_test)
        rows = [(k, stack.step, PRECISE, v) for k, v in enumerate(precise.tolist())]
        rows += [(k, stack.step, BATCH_STATS, v) for k, v in enumerate(by_batch.tolist())]
        store.write(rid, [], rows)


def run(out_dir: Path, seeds: Seeds, quick: bool, ctx: RunContext) -> None:
    sizes = QUICK_BATCH_SIZES if quick else BATCH_SIZES
    cfgs = {b: config(pre.seeds_of(seeds, NAME), quick, b) for b in sizes}
    for batch, cfg in cfgs.items():  # one stack per batch size: trained one after another
        train_variants(f"{NAME} B={batch}", cfg, cell_dir(out_dir, batch), ctx, False)
    # small batches: one thread is faster (see train_variants)
    with torch_threads(ctx.threads or 1):
        for batch, cfg in cfgs.items():
            say(NAME, f"B={batch}: precise-BN and batch-statistics evaluations")
            measure(cfg, cell_dir(out_dir, batch), ctx)


def analyze(out_dir: Path) -> ExperimentResult:
    manifest = read_manifest(out_dir)
    sizes = tuple(b for b in BATCH_SIZES if cell_dir(out_dir, b).is_dir())
    if not sizes:
        raise ResultsNotFoundError(f"DIR: {out_dir} holds no batch-size runs of {NAME}")
    acc: dict[int, dict[str, np.ndarray]] = {}  # batch -> mode -> (K,) percent
    configs: list[dict] = []
    for batch in sizes:
        with Results(cell_dir(out_dir, batch)) as res:
            acc[batch] = {m: 100.0 * res.metric("batch", k)[1][:, -1] for m, k in MODES.items()}
            configs += stored_configs(res)
    section, rows = _section(out_dir, sizes, acc, configs, rules(manifest.seeds))
    return experiment_result(NAME, manifest, [section], rows)


def _rows(acc, declared: tuple[Rule, ...]) -> list:
    """The declared rules' rows, for the batch sizes trained (quick runs have fewer)."""
    modes = {
        claims.PRECISE_BN_NOT_WORSE: ("precise", "EMA"),
        claims.BATCH_STATS_SMALL_BATCH: ("batch statistics", "precise"),
    }
    rows = []
    for rule in declared:
        batch = int(rule.setting.rsplit("/B", 1)[1])
        if batch not in acc:
            continue
        first, second = modes[rule.claim]
        gate = pre.trains_gate(float(np.nanmean(acc[batch]["precise"])))
        rows.append(scored(rule, acc[batch][first], acc[batch][second], gate_failed=gate))
    return rows


def _section(out_dir: Path, sizes, acc, configs: list, declared: tuple[Rule, ...]) -> Part:
    cfg = configs[-1]  # BN's momentum, the same at every batch size
    rows = _rows(acc, declared)
    grid = {m: np.stack([acc[b][m] for b in sizes], axis=1) for m in MODES}
    files = grid_points(
        Path(out_dir) / "figures" / "train_test_stats",
        sizes,
        grid,
        xlabel="training batch size (examples, log scale)",
        ylabel="test accuracy (%)",
        title="BN at test time: EMA vs precise vs batch statistics",
        hint="At each batch size, compare the three points' vertical gaps with their error "
        "bars; then how the gaps change from large to small batches.",
    )
    fig = ReportFigure.from_files(
        files,
        files.caption("Test accuracy of the same BN networks under three test-time statistics"),
    )
    gaps = [
        (
            str(b),
            *(fmt(acc[b][m]) for m in MODES),
            fmt(acc[b]["precise"] - acc[b]["EMA"]),
            fmt(acc[b]["batch statistics"] - acc[b]["precise"]),
        )
        for b in sizes
    ]
    table = Table(
        "Test accuracy (%), mean ± 95% CI over seeds, and the paired gaps (pp)",
        ("batch size", *MODES, "precise − EMA", "batch − precise"),
        gaps,
    )
    protocol = {
        **describe_runs(configs),
        "design": "the small-batch study's CNN, lr rule and epochs, BN only",
        "test-time statistics": f"EMA (momentum {cfg['model']['norm']['momentum']:g}); precise BN "
        f"over {PRECISE_IMAGES:,} training images in batches of B; batch statistics of "
        "test batches of B images",
        **vs_source(
            "Wu & Johnson 2021",
            [
                "an all-conv CNN (norms after convolutions only) on the CIFAR-10 subset, not "
                "ResNet-50 on ImageNet",
                "precise BN over one epoch of batches of the training size",
                "BN only, at batch sizes up to 32",
            ],
        ),
    }
    section = Section(
        title=f"{NAME}: BN's statistics at test time (Wu & Johnson 2021)",
        protocol=protocol,
        data_source=data_source("cifar10"),
        figures=[fig],
        tables=[table],
        notes=[
            "A batch size is measurable only where the BN network trains (precise-statistics "
            "accuracy at least 10 points above chance): a comparison of test-time statistics "
            "on a network at chance says nothing about them.",
            pre.confirmation_note(NAME),
        ],
        configs=configs,
    )
    return section, rows


EXPERIMENT = register(
    Experiment(
        NAME,
        "BN's test-time statistics after small-batch training",
        run,
        analyze,
        rules,
        pre.confirmation(NAME),
    )
)
