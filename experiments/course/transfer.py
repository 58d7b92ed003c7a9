r"""Transfer learning: pretrain on one task, then learn another from 10 labels per class.

    python -m experiments.course --only=transfer --out=/tmp/course   # -> transfer.png
    python -m experiments.course --out=/tmp/course --only=transfer [--quick]

Source task: digits 0-4 (scikit-learn's 8×8 digits, the 721 training
images of those classes). Target task: digits 5-9 with only the first 10
training images of each class (50 labels), evaluated on the 180 test images
of 5-9 (chance 1/5). The model is the default config's small ViT
(experiments/configs/default.py: digits upsampled to 32×32, 16×16 patches,
width 64, depth 4, AdamW, cosine decay, label smoothing 0.1, 'shift'
augmentation), trained through the trainer; pixels are standardised with
the statistics of all training digits for both tasks. Three ways to learn
the target task, with the same recipe at a quarter of the source's peak
learning rate (5e-4) for 100 steps of the 50 images, after 400 source
steps:

* scratch: a fresh initialisation;
* linear probe: `init_from` the source run's workdir, the classifier
  re-initialised (zero, `init_from.head='reinit'`), every other parameter
  frozen (`optimizer.freeze=('^(?!head/)',)`): a softmax classifier on the
  source network's class-token features;
* fine-tuning: the same start, every parameter trained.

A ViT has little inductive bias for images: from 50 labels it learns weak
features, and features learnt on 0-4 (strokes at the patch scale, how
patches combine) give a head start on 5-9 (Yosinski et al. 2014, "How transferable
are features in deep neural networks?"; Dosovitskiy et al. 2021 on ViTs
needing pretraining). The probe shows the source features carry
information about the new classes, but features shaped to separate 0-4
alone are far from enough; fine-tuning adapts them.

Claims: fine-tuning's test accuracy > scratch's; the linear probe's >
chance (0.2) by more than 2 binomial standard deviations of 180 test
images (> 0.26). Measured: scratch 0.706, linear probe 0.300, fine-tune
0.767; source 0.978 on digits 0-4.

The advantage is one of budget and is small: with 200 target steps scratch
catches up and passes fine-tuning (measured: scratch 0.789, fine-tune 0.761
after 400 source steps; 0.789 vs 0.728 after 1200 source steps, whose more
specialised features also transfer worse). Hence `--quick` runs the same
sizes as the full experiment (it takes about a minute and a half of CPU).
"""
from __future__ import annotations

import os

import ml_collections

from experiments.course import figure
from experiments.course import runs as runs_lib
from experiments.course.claim import Claim, greater

NAME = 'transfer'
SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)
LABELS_PER_CLASS = 10
CHANCE = 1 / len(TARGET_CLASSES)
TEST_IMAGES = 180  # of digits 5-9
PROBE_BOUND = CHANCE + 2 * (CHANCE * (1 - CHANCE) / TEST_IMAGES) ** 0.5
PROBE = ('^(?!head/)',)  # freeze every parameter but the classifier's
MODES = ('scratch', 'linear probe', 'fine-tune')
TARGET_LR = 5e-4  # a quarter of the source's peak: 50 examples per step, fitted fast
# (source, target) steps, the same with and without --quick: see the docstring.
STEPS = {True: (400, 100), False: (400, 100)}


def pixel_stats() -> tuple[float, float]:
  """Mean and std of the pixels (in [0, 1]) of all 1,437 training digits."""
  from experiments.data import digits  # pylint: disable=g-import-not-at-top
  split = digits.load('train')
  x = split.images / split.scale
  return float(x.mean()), float(x.std())


def _base(steps: int, eval_every: int) -> ml_collections.ConfigDict:
  from experiments.configs import default  # pylint: disable=g-import-not-at-top
  c = default.get_config()
  c.total_epochs = None
  c.total_steps = steps
  c.log_every = eval_every
  c.eval_every = eval_every
  c.checkpoint_every = steps
  # One normalisation for both tasks: per-task statistics (50 target images) would feed
  # the pretrained network inputs shifted from those it learnt on.
  mean, std = pixel_stats()
  c.data.mean, c.data.std = (mean,), (std,)
  return c


def source_config(steps: int) -> ml_collections.ConfigDict:
  """Digits 0-4, all their training images."""
  c = _base(steps, eval_every=max(steps // 4, 1))
  c.data.classes = SOURCE_CLASSES
  return c


def target_config(mode: str, steps: int, source_workdir: str) -> ml_collections.ConfigDict:
  """Digits 5-9 from 10 labels per class; `mode` one of MODES."""
  c = _base(steps, eval_every=max(steps // 10, 1))
  c.data.classes = TARGET_CLASSES
  c.data.train_per_class = LABELS_PER_CLASS
  c.batch_size = len(TARGET_CLASSES) * LABELS_PER_CLASS  # the whole few-label set per step
  c.schedule.warmup_steps = max(steps // 20, 1)
  c.optimizer.learning_rate = TARGET_LR
  if mode != 'scratch':
    c.init_from.path = source_workdir
    c.init_from.head = 'reinit'  # a new task: its classifier starts at zero
  if mode == 'linear probe':
    c.optimizer.freeze = PROBE
  return c


def _workdir(out: str, label: str, quick: bool) -> str:
  return os.path.join(out, 'runs_quick' if quick else 'runs', NAME, label.replace(' ', '_'))


def run(out: str, quick: bool = False) -> dict[str, Claim]:
  source_steps, target_steps = STEPS[quick]
  source_dir = _workdir(out, 'source', quick)
  source = runs_lib.train_records('source 0-4', source_config(source_steps), source_dir)
  runs = {mode: runs_lib.train_records(mode, target_config(mode, target_steps, source_dir),
                                       _workdir(out, mode, quick))
          for mode in MODES}
  acc = {mode: final_accuracy(r) for mode, r in runs.items()}
  plot(runs, final_accuracy(source), os.path.join(out, f'{NAME}.png'))
  return {
      'source task (digits 0-4) test accuracy': greater(final_accuracy(source), 0.9),
      'scratch: target test accuracy': Claim(acc['scratch'], 'reference', True),
      'fine-tune − scratch (target test accuracy)': greater(
          acc['fine-tune'] - acc['scratch'], 0.0),
      'linear probe: target test accuracy': greater(acc['linear probe'], PROBE_BOUND,
                                                    f' (chance {CHANCE:.2f} + 2σ)'),
  }


def final_accuracy(run: runs_lib.Run) -> float:
  xs, ys = run.series('val/accuracy')
  return float(ys[-1]) if ys and run.diverged is None else float('nan')


def plot(runs: dict[str, runs_lib.Run], source_accuracy: float, path: str) -> None:
  fig, axes = figure.new(2, width=5.4)
  ax = axes[0][0]
  for mode, r in runs.items():
    xs, ys = r.series('val/accuracy')
    ax.plot(xs, ys, marker='o', ms=3, label=mode)
  ax.axhline(CHANCE, color='grey', ls=':', label='chance')
  ax.set_xlabel('step on the target task')
  ax.set_ylabel('test accuracy, digits 5-9')
  ax.set_ylim(0, 1)
  ax.set_title(f'{LABELS_PER_CLASS} labels per class')
  ax.legend()
  ax = axes[0][1]
  acc = [final_accuracy(r) for r in runs.values()]
  bars = ax.bar(list(runs), acc, color=['tab:blue', 'tab:orange', 'tab:green'])
  ax.bar_label(bars, fmt='%.3f')
  ax.axhline(CHANCE, color='grey', ls=':')
  ax.set_ylim(0, 1)
  ax.set_ylabel('final test accuracy')
  ax.set_title(f'pretrained on digits 0-4 (test accuracy {source_accuracy:.3f})')
  for a in axes[0]:
    a.grid(alpha=0.3)
  figure.save(fig, path, title='Transfer learning: digits 0-4 → 5-9')

