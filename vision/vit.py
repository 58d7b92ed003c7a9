"""Placeholder until the vit family lands; the registry imports MODELS."""
MODELS = {}
