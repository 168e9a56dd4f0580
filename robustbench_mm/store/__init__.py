"""The run directory and everything that reads or writes it."""
