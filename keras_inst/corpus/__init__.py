"""The embedded multitrack corpus: music21 scores arranged for ensembles, rendered to stems in Slakh layout."""
