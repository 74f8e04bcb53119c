"""``python -m keras_inst.taxonomy --markdown``: see :func:`keras_inst.taxonomy.main`."""

import sys

from keras_inst.taxonomy import main

sys.exit(main())
