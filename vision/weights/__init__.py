"""Checkpoint converters, one module per family.

Each family module (`vision/weights/<family>.py`) provides:

  detect(tensors) -> str | None
      the naming convention of a flat {key: array} checkpoint
      ('hf', 'timm', 'original' or 'google'), or None when it is not this family's.
  num_classes(tensors, fmt) -> int | None
      the classifier width stored in the checkpoint (None: no head).
  to_flax(tensors, fmt, module) -> dict
      the flax variables ({'params': ..., 'batch_stats': ...}) for `module`,
      doing every layout change (Linear transpose, OIHW→HWIO, depthwise,
      fused qkv/kv splits), at the checkpoint's geometry (the loader resizes
      position embeddings and bias tables, `vision.resize`). Keys it does
      not use are returned under the top-level '__unused__' entry so the
      loader can report them.
  default_overrides(fmt, tensors) -> dict   (optional)
      module overrides a checkpoint implies (e.g. HF's LayerNorm eps, the
      width of a `pre_logits` layer), applied unless the caller overrides
      them explicitly.
"""
