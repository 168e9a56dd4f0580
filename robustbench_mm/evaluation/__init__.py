"""The suite interface, the runner and the lenses that are not attacks or corruptions."""
