"""quantsweep: from a trained detector to a measured low-precision deployment decision.

``import quantsweep`` stays light: heavy libraries (torch, ultralytics, onnxruntime) are
imported inside the functions that need them.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
