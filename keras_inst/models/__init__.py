"""Models (paper §2.1, §2.4): log-mel front end, short-chunk CNN, musicnn VGG port, pre-trained weights, optimizers."""
