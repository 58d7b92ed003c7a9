"""Placeholder until the pvt family lands; the registry imports MODELS."""
MODELS = {}
