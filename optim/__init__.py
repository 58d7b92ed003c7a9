"""visopt optimizers: optax-style first-order methods, schedules, regularizers.

Every optimizer returns a real `optax.GradientTransformation` built from the
small transforms in `optim.transform` (torch.optim semantics by default; see
docs/optim.md). `optim.create(name, **hparams)` builds one by name for configs;
`optim.schedules` holds the learning-rate schedules; `optim.policy` and
`optim.layer_decay` the per-path policy (learning-rate multipliers, no-decay
masks, freezing, layer-wise learning-rate decay); `optim.averaging` EMA and
Polyak iterate averaging.
"""
from optim import averaging
from optim import layer_decay
from optim import policy
from optim import regularizers
from optim import schedules
from optim.alias import adadelta
from optim.alias import adagrad
from optim.alias import adam
from optim.alias import adamax
from optim.alias import adamw
from optim.alias import amsgrad
from optim.alias import chain
from optim.alias import nadam
from optim.alias import rmsprop
from optim.alias import sgd
from optim.clipping import clip_by_global_norm
from optim.clipping import global_norm
from optim.registry import create
from optim.registry import names
from optim.regularizers import elastic_net
from optim.regularizers import l1
from optim.regularizers import l2
from optim.regularizers import penalty
from optim.transform import add_decayed_weights
from optim.transform import scale_by_adadelta
from optim.transform import scale_by_adam
from optim.transform import scale_by_adamax
from optim.transform import scale_by_learning_rate
from optim.transform import scale_by_nadam
from optim.transform import scale_by_rms
from optim.transform import scale_by_rss
from optim.transform import trace

__all__ = [
    # optimizers
    'sgd', 'adagrad', 'rmsprop', 'adam', 'adamw', 'amsgrad', 'adadelta',
    'adamax', 'nadam', 'create', 'names', 'chain',
    # transforms
    'add_decayed_weights', 'scale_by_adadelta', 'scale_by_adam',
    'scale_by_adamax', 'scale_by_learning_rate', 'scale_by_nadam',
    'scale_by_rms', 'scale_by_rss', 'trace', 'clip_by_global_norm',
    'global_norm',
    # schedules and penalties
    'schedules', 'regularizers', 'policy', 'layer_decay', 'l2', 'l1', 'elastic_net', 'penalty',
]

from optim import second_order as _second_order  # noqa: E402
__all__ += list(getattr(_second_order, '__all__', ()))

# --- second-order methods (optim/second_order) ---
from optim.second_order import *  # noqa: F401,F403
# --- end second-order ---
