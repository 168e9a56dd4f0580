"""robustbench_mm: does Manifold Mixup make a classifier more robust, and in which sense?

``evaluate(model, dataset)`` scores any model that takes [0, 1] images; ``evaluate_run(dir)``
scores a run directory. Both return results in the one schema (see ``results.COLUMNS``).
"""

__version__ = "0.1.0"

__all__ = ["__version__", "evaluate", "evaluate_run"]


def __getattr__(name: str):
    # Lazy: `import robustbench_mm` stays cheap for the CLI, and the API is one import away.
    if name in ("evaluate", "evaluate_run"):
        from . import evaluation

        return getattr(evaluation, name)
    raise AttributeError(name)
