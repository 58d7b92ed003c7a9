"""visopt's input pipeline: digits, image folders and TFDS behind one contract.

    from experiments import data
    cfg = data.default_config()
    info = data.get_info(cfg)
    train = data.make_train_iterator(cfg, global_batch_size=128, seed=0,
                                     num_local_devices=jax.local_device_count())
    batch = next(train)   # image float32[D, B/D, H, W, C], label int32[D, B/D]
    for batch in data.make_eval_iterator(cfg, 128, jax.local_device_count()):
      ...                 # plus mask bool[D, B/D]; every example exactly once

See `pipeline.py` for the batch contract and `config.py` for every knob.
"""
from experiments.data.config import AUGMENTATIONS
from experiments.data.config import default_config
from experiments.data.pipeline import check_batch
from experiments.data.pipeline import eval_image_shapes
from experiments.data.pipeline import get_info
from experiments.data.pipeline import iterate
from experiments.data.pipeline import make_eval_iterator
from experiments.data.pipeline import make_train_iterator
from experiments.data.pipeline import measure_throughput
from experiments.data.prefetch import default_size as default_prefetch
from experiments.data.prefetch import prefetch_to_device
from experiments.data.source import DatasetInfo

__all__ = [
    'AUGMENTATIONS', 'DatasetInfo', 'check_batch', 'default_config', 'default_prefetch',
    'eval_image_shapes',
    'get_info', 'iterate',
    'make_eval_iterator', 'make_train_iterator', 'measure_throughput', 'prefetch_to_device',
]
