"""Placeholder until the baselines family lands; the registry imports MODELS."""
MODELS = {}
