"""``python -m keras_inst.train`` (= ``keras-inst train``): the command line of :mod:`keras_inst.training.train`."""

import sys

from keras_inst.training.train import main

if __name__ == "__main__":
    sys.exit(main())
