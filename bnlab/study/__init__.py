"""bnlab.study: your own question, with the lab's rigour.

Declare a study in a few lines (a model factory, the variants to compare, the data, the
optimizer, steps and seeds, and the claims to decide), then run it:

    from bnlab.study import Claim, Study, Variant, replace_norm, run
    study = Study("gn-vs-bn", model=make_resnet, data="cifar10",
                  variants={"bn": Variant(), "gn": Variant(model=replace_norm("group", 4))},
                  claims=[Claim("test_accuracy", "gn", than="bn")])
    run(study, "results/gn-vs-bn")            # or: bnlab study FILE --out DIR

Each variant's seeds train as one vmapped computation (`torch.func`) where the model allows
it, BN included (`functional_state`), else one member at a time, saying why. Results go to
the engine's SQLite store with the declaration and claims fixed before the first step, and
each claim's decision rule (`bnlab.study.rules`: measure, scale, margin, test, the control
gate) is recorded in preregistration.json before it, as `bnlab reproduce` does; the report
decides them with the lab's tests and Holm's correction over the study's claims
(`bnlab.study.decide`). `--resume`, `bnlab replay` and `bnlab report` work on a study
directory as on any other.
"""

from bnlab._lazy import attach

# Imported on first use (bnlab._lazy): `bnlab study --help` starts without torch.
__all__ = attach(
    __name__,
    {
        **dict.fromkeys(("Claim", "Data", "Optimizer", "Study", "Variant"), "bnlab.study.spec"),
        **dict.fromkeys(
            ("FunctionalBatchNorm", "batch_norm_state", "to_functional"),
            "bnlab.study.functional_state",
        ),
        "load_study": "bnlab.study.load",
        "replace_norm": "bnlab.study.norms",
        "run": "bnlab.study.run",
    },
)
