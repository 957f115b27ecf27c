"""edgec: compile a trained Keras or ONNX model into verified edge-deployment artifacts."""

__version__ = "0.1.0"

__all__ = ["__version__", "compile"]


def compile(model, targets, **kwargs):  # noqa: A001 - mirrors the CLI verb
    """Compile ``model`` for ``targets``; see :func:`edgec.pipeline.compile` for the keywords."""
    from .pipeline import compile as _compile

    return _compile(model, targets, **kwargs)
