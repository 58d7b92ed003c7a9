"""Placeholder until the segformer family lands; the registry imports MODELS."""
MODELS = {}
