"""Configuration: frozen dataclasses for every number of an experiment (`schema`) and YAML I/O (`io`)."""
