"""Data (paper §2.2-2.3): dataset readers, song splits, the stem cache, mixing recipes and the tf.data pipeline.

`python -m keras_inst.data` is the data command line (`cli`).
"""
