"""Configs stored by earlier versions of bnlab, read as this version's.

Earlier versions kept the norm layers' parameters as flat `ModelConfig` fields (`bn_eps`,
`norm_groups`, `renorm_warmup`, ...). They now live in `ModelConfig.norm`, one section per
norm layer (`bnlab.engine.norms`). `upgrade_model` moves the stored values there, so a
stored run resumes, replays and is reported with the parameters it trained with, never
with the defaults of the version reading them; `renamed` tells a `--set` of an old name
where it went.
"""

from __future__ import annotations

from bnlab.errors import ConfigError

# old ModelConfig field -> its path under ModelConfig.norm
FLAT_NORM_FIELDS: dict[str, tuple[str, ...]] = {
    "bn_eps": ("eps",),
    "bn_momentum": ("momentum",),
    "bn_kernel": ("kernel",),
    "compile_norm": ("compiled",),
    "noise_mean_max": ("batch_noisy", "mean_max"),
    "noise_std_min": ("batch_noisy", "std_min"),
    "noise_std_max": ("batch_noisy", "std_max"),
    "norm_groups": ("group", "groups"),
    "ghost_batch_size": ("ghost", "virtual_batch_size"),
    "renorm_r_max": ("renorm", "r_max"),
    "renorm_d_max": ("renorm", "d_max"),
}
# Batch Renorm's old warm-up: `renorm_warmup` steps of plain BN, then r_max and d_max rose
# over `renorm_r_ramp` and `renorm_d_ramp` steps. RenormWarmup counts the steps at which
# each limit is reached instead: r_max_step = warmup + r_ramp (a ramp of 0 switched the
# limit on at once, which a step equal to `start` does).
RENORM_SCHEDULE = ("renorm_warmup", "renorm_r_ramp", "renorm_d_ramp")


def upgrade_model(data: dict) -> dict:
    """A stored `ModelConfig` dict in this version's layout (unchanged if it already is)."""
    old = [key for key in (*FLAT_NORM_FIELDS, *RENORM_SCHEDULE) if key in data]
    if not old:
        return data
    if "norm" in data:
        raise ConfigError(
            f"model: holds both model.norm and the earlier flat fields {', '.join(old)}; "
            "expected one or the other"
        )
    new = {key: value for key, value in data.items() if key not in old}
    norm: dict = {}
    for key, path in FLAT_NORM_FIELDS.items():
        if key in data:
            *sections, name = path
            node = norm
            for section in sections:
                node = node.setdefault(section, {})
            node[name] = data[key]
    if any(key in data for key in RENORM_SCHEDULE):
        start = data.get("renorm_warmup", 0)
        norm.setdefault("renorm", {})["warmup"] = {
            "start": start,
            "r_max_step": start + data.get("renorm_r_ramp", 0),
            "d_max_step": start + data.get("renorm_d_ramp", 0),
        }
    new["norm"] = norm
    return new


def renamed(key: str) -> str | None:
    """Where an earlier version's config key (dotted or not) lives now, or None."""
    leaf = key.rsplit(".", 1)[-1]
    if leaf in FLAT_NORM_FIELDS:
        return "model.norm." + ".".join(FLAT_NORM_FIELDS[leaf])
    if leaf in RENORM_SCHEDULE:
        return "model.norm.renorm.warmup.start, .r_max_step and .d_max_step (steps, not ramps)"
    return None
