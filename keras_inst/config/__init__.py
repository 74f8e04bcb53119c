"""Configuration: frozen dataclasses for every number of an experiment (`schema`), YAML I/O (`io`)
and the registries of backbone, pre-trained-weight and dataset names (`registry`)."""
