"""edgec's version, in core so that every layer can name it without importing the package root
(whose ``compile`` reaches the pipeline, the top of the stack)."""

__version__ = "0.1.0"
