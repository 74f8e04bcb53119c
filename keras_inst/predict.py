"""``python -m keras_inst.predict`` (= ``keras-inst predict``): the command line of :mod:`keras_inst.deploy.predict`."""

import sys

from keras_inst.deploy.predict import main

if __name__ == "__main__":
    sys.exit(main())
