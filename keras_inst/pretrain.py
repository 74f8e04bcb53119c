"""``python -m keras_inst.pretrain`` (= ``keras-inst pretrain``): the command line of :mod:`keras_inst.training.pretrain`."""

import sys

from keras_inst.training.pretrain import main

if __name__ == "__main__":
    sys.exit(main())
