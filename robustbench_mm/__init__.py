"""robustbench_mm: does Manifold Mixup make a classifier more robust, and in which sense?

``evaluate(model, dataset)`` scores any model that takes [0, 1] images (``evaluate_details``: with
per-example results); ``evaluate_run(dir)`` scores a run directory. Both return results in the
one schema (see ``core.results.COLUMNS``).
``train(TrainConfig(...))`` trains one run, ``run_benchmark(RunPlan(), TrainConfig(), EvalConfig())``
is ``mmbench run``, ``load_dataset(name, data_root=...)`` loads a dataset and
``load_model(run_dir_or_model_pt)`` a trained model, ready to evaluate.
"""

__version__ = "0.1.0"

# name -> module: the public API, imported on first use (`import robustbench_mm` stays cheap for the CLI)
_API = {
    "evaluate": "evaluation.runner",
    "evaluate_details": "evaluation.runner",
    "evaluate_run": "evaluation.runner",
    "load_dataset": "data.datasets",
    "load_model": "evaluation.loading",
    "train": "training.loop",
    "TrainConfig": "settings",
    "EvalConfig": "settings",
    "RunPlan": "settings",
    "run_benchmark": "app.pipeline",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(name)
