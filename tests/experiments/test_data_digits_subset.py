"""`data.classes` / `data.train_per_class`: digits subsets for transfer-learning experiments."""
import numpy as np
import pytest

from experiments import data
from experiments.data import digits


def _cfg(**kw):
  cfg = data.default_config()
  for k, v in kw.items():
    cfg[k] = v
  return cfg


def test_classes_relabelled_in_listed_order_and_first_n_per_class():
  full = digits.load('train')
  sub = digits.load('train', classes=(7, 5), per_class=3)
  assert len(sub) == 6 and sorted(sub.labels.tolist()) == [0, 0, 0, 1, 1, 1]
  for label, digit in ((0, 7), (1, 5)):
    want = full.images[full.labels == digit][:3]  # the first 3 in canonical order
    np.testing.assert_array_equal(sub.images[sub.labels == label], want)
  test = digits.load('test', classes=(5, 6, 7, 8, 9))
  assert len(test) == np.isin(digits.load('test').labels, [5, 6, 7, 8, 9]).sum()


def test_info_and_eval_stream_of_a_subset():
  cfg = _cfg(classes=(5, 6, 7, 8, 9), train_per_class=10)
  info = data.get_info(cfg)
  assert (info.num_classes, info.num_train, info.num_eval) == (5, 50, 180)
  labels = np.concatenate([b['label'][b['mask'] > 0] for b in
                           data.make_eval_iterator(cfg, 40, 1, 0, 1)])
  assert len(labels) == 180 and set(labels.tolist()) == set(range(5))


@pytest.mark.parametrize('kw,match', [
    (dict(classes=(1, 1)), 'distinct digits'), (dict(classes=(10,)), 'distinct digits'),
    (dict(classes=()), 'distinct digits'), (dict(train_per_class=0), 'positive integer'),
    (dict(name='cifar10', classes=(1,)), 'not digits'),
])
def test_bad_subsets_raise(kw, match):
  with pytest.raises(ValueError, match=match):
    data.get_info(_cfg(**kw))
