"""Semantic segmentation: per-pixel loss, mIoU metrics, whole-image and sliding-window inference.

The `Segmentation` task (`task.py`, registered as `config.task='segmentation'`)
plugs these into the task-agnostic trainer; `experiments/data` supplies the
dense batches (`shapes`, `segfolder:PATH`, TFDS `scene_parse150`).
"""
