"""Multi-input multi-output classification on the engine, shared by MixMo and MixShare (spec mixmo-mixshare §2-§4).

`MultiInputMethod` owns everything the two methods have in common: the datasets, the batch-repetition sampler,
pairing the inputs (`mixlab.mixing.pairing`), batched augmentation, SGD with the warm-up multistep schedule, the
test-time prediction of a `MultiHeadMIMO` and the evaluation summary. A subclass supplies its mixing and its loss
in `train_step`. `mixlab.mimo.evaluation` rebuilds such networks from checkpoints and evaluates them alone, as deep
ensembles and on CIFAR-100-C.
"""

from mixlab.mimo.config import MultiInputConfig
from mixlab.mimo.method import MultiInputMethod, build_network, predict, summarize

__all__ = ["MultiInputConfig", "MultiInputMethod", "build_network", "predict", "summarize"]
