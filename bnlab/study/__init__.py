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
the engine's SQLite store with the declaration and claims fixed before the first step;
`--resume`, `bnlab replay` and `bnlab report` work on a study directory as on any other.
"""

from bnlab.study.functional_state import FunctionalBatchNorm, batch_norm_state, to_functional
from bnlab.study.load import load_study
from bnlab.study.norms import replace_norm
from bnlab.study.run import run
from bnlab.study.spec import Claim, Data, Optimizer, Study, Variant

__all__ = [
    "Claim",
    "Data",
    "FunctionalBatchNorm",
    "Optimizer",
    "Study",
    "Variant",
    "batch_norm_state",
    "load_study",
    "replace_norm",
    "run",
    "to_functional",
]
