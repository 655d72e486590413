"""Training sets, augmentation, the training loop, saved models and their evaluation."""
