"""Inference: the Animator (model-sized tensors) and the file-level animation pipeline."""
