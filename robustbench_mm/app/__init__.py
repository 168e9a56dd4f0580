"""The pipeline behind `mmbench run`."""
