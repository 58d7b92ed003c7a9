"""The trainer, by concept:

- `state`: `Setup`, `TrainState`, `AXIS`, `NonFiniteError`, device copies;
- `durations`: steps from steps-or-epochs;
- `optimizer`: config.optimizer / schedule / reg → optim (and the policy keys);
- `setup`: `build(config)` (validate and assemble, nothing run) and `init_state`;
- `step`: the pure `train_step(state, batch, rng)`;
- `evaluation`: the eval step, `evaluate` and `evaluate_averages` (val_ema, val_polyak);
- `sharding`: the fsdp layout of the state and its bytes per device, from shapes;
- `parallel`: `config.parallelism` ('pmap' | 'jit' | 'fsdp'): the compiled step and
  evals, and where the state and batches live;
- `stopping`: early stopping, the best weights in checkpoints/best, best.json;
- `loop`: `train_and_evaluate(setup, workdir)`.
"""
from experiments.trainer.durations import total_steps_of
from experiments.trainer.evaluation import evaluate
from experiments.trainer.evaluation import EvalStep
from experiments.trainer.evaluation import make_eval_fns
from experiments.trainer.evaluation import pmap_eval_step
from experiments.trainer.loop import train_and_evaluate
from experiments.trainer.optimizer import make_optimizer
from experiments.trainer.optimizer import make_penalty
from experiments.trainer.optimizer import make_schedule
from experiments.trainer.optimizer import POLICY_KEYS
from experiments.trainer.setup import build
from experiments.trainer.setup import init_state
from experiments.trainer.setup import model_overrides
from experiments.trainer.state import AXIS
from experiments.trainer.state import NonFiniteError
from experiments.trainer.state import Preempted
from experiments.trainer.state import replicate
from experiments.trainer.state import Setup
from experiments.trainer.state import TrainState
from experiments.trainer.state import unreplicate
from experiments.trainer.step import make_train_step

__all__ = [
    'AXIS', 'EvalStep', 'NonFiniteError', 'POLICY_KEYS', 'Preempted', 'Setup', 'TrainState',
    'build', 'evaluate', 'init_state', 'make_eval_fns', 'make_optimizer', 'make_penalty',
    'make_schedule', 'make_train_step', 'model_overrides', 'pmap_eval_step', 'replicate',
    'total_steps_of', 'train_and_evaluate', 'unreplicate',
]
