"""edgec: compile a trained Keras or ONNX model into verified edge-deployment artifacts."""

from edgec.core.version import __version__

__all__ = ["__version__", "compile"]


def compile(model, targets, *, calibration=None, eval=None, out="build", trust_model=False,  # noqa: A001,A002
            recipe=None, **settings):
    """Compile ``model`` for ``targets`` into ``out/<target>/``; return ``{target: report}``.

    Mirrors ``edgec compile``: ``calibration``/``eval`` are paths (or ``"random"``), ``recipe`` an
    ``edgec.toml`` path, and the remaining keywords are recipe and CLI settings of the same names
    (``prune=0.5``, ``clusters=16``, ``distill=True``, ``backend="c"``, ``max_accuracy_drop=0.01`` ...).
    """
    from dataclasses import fields

    from edgec.pipeline import compile as _compile
    from edgec.compress.recipe import Recipe, from_dict, load

    known = {f.name for f in fields(Recipe)}
    base = load(recipe) if recipe else Recipe()
    resolved = from_dict({k: v for k, v in settings.items() if k in known}, base=base, source="keyword arguments")
    extra = {k: v for k, v in settings.items() if k not in known}
    targets = [targets] if isinstance(targets, str) else list(targets)
    return _compile(model, targets, calibration=calibration, eval=eval, out=out, trust_model=trust_model,
                    recipe={**resolved.to_dict(), **extra})
