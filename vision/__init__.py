"""visopt.vision: pure-functional flax.linen vision models with weight import.

    module = vision.create_model('vit_small_patch16_224', num_classes=10)
    variables = module.init(jax.random.PRNGKey(0), images, train=False)
    logits = module.apply(variables, images, train=False)

Importing `vision` applies the CPU host settings of `vision/host_runtime.py`
(docs/host_runtime.md); `vision.HOST_RUNTIME` records what is in force.
"""
from vision import host_runtime

HOST_RUNTIME = host_runtime.configure()

from vision.pretrained import load_pretrained
from vision.registry import create_model
from vision.registry import get_model_def
from vision.registry import list_models
from vision.summary import param_count
from vision.summary import summary

__all__ = ['HOST_RUNTIME', 'create_model', 'get_model_def', 'list_models', 'load_pretrained',
           'param_count', 'summary']
