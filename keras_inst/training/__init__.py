"""Training and evaluation (paper §3): the run lifecycle, train, pretrain, tune, evaluate, metrics and reports."""
