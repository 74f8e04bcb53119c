"""``python -m keras_inst <verb> [options]``: see :mod:`keras_inst.cli`."""

import sys

from keras_inst.cli import main

sys.exit(main())
