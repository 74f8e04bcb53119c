"""``python -m keras_inst.data`` (= ``keras-inst data``): see :mod:`keras_inst.data.cli`."""

import sys

from keras_inst.data.cli import main

sys.exit(main())
