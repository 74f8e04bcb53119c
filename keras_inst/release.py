"""``python -m keras_inst.release`` (= ``keras-inst release``): the command line of :mod:`keras_inst.deploy.release`."""

import sys

from keras_inst.deploy.release import main

if __name__ == "__main__":
    sys.exit(main())
