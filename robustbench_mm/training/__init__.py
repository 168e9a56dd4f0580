"""The training loop and its learning-rate schedules."""
