"""``python -m keras_inst.tune`` (= ``keras-inst tune``): the command line of :mod:`keras_inst.training.tune`."""

import sys

from keras_inst.training.tune import main

if __name__ == "__main__":
    sys.exit(main())
