"""The sequence model: spec (config.json), network, artifact I/O, inference, training, importers."""
