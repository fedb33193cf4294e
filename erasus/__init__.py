__version__ = "0.1.0"
# erasus: machine unlearning you can measure, against a retrain-from-scratch oracle.
#
# This file is hand-written: nbdev generates every other module in erasus/ from nbs/ and only rewrites the
# `__version__` line above. The public names are imported lazily on first use (PEP 562), so `import erasus`
# (which nbdev does to read `erasus._modidx`) stays cheap and cannot hit a circular import mid-export.

_EXPORTS = {
    "unlearn": "erasus.api",
    "UnlearnResult": "erasus.api",
    "select": "erasus.api",
    "evaluate": "erasus.evaluation",
    "UnlearningWarning": "erasus.budgets",
    "get_scenario": "erasus.bench",
    "Problem": "erasus.data",
    "ClassificationTask": "erasus.tasks",
    "STRATEGIES": "erasus.core",
    "SELECTORS": "erasus.core",
    "METRICS": "erasus.core",
    "BENCHMARKS": "erasus.core",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    "Import a public name (or a submodule, e.g. `erasus.metrics`) the first time it is asked for."
    import importlib, importlib.util
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
