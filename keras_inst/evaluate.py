"""``python -m keras_inst.evaluate`` (= ``keras-inst evaluate``): the command line of :mod:`keras_inst.training.evaluate`."""

import sys

from keras_inst.training.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
