"""``python -m keras_inst.serve`` (= ``keras-inst serve``): the command line of :mod:`keras_inst.deploy.serve`."""

import sys

from keras_inst.deploy.serve import main

if __name__ == "__main__":
    sys.exit(main())
