"""The training loop's parts: schedule, freezing over epochs, early stopping, checkpoints,
progress, the learning-rate finder, seeding, the feature cache and the speed paths."""
