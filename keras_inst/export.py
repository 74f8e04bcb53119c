"""``python -m keras_inst.export`` (= ``keras-inst export``): the command line of :mod:`keras_inst.deploy.export`."""

import sys

from keras_inst.deploy.export import main

if __name__ == "__main__":
    sys.exit(main())
