"""handwriting: train, track, promote and serve small networks that read handwriting."""

__version__ = "0.1.0"
