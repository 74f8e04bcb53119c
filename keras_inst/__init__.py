"""keras_inst: multi-instrument recognition with musical/non-musical mixing and transfer learning.

Importing the package has no side effects (no TensorFlow import, no logging set-up).
"""

__version__ = "0.1.0"
