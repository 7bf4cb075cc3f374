"""The sequence model, standing alone (torch, safetensors, numpy, pydantic; nothing of the
pipeline): the config.json spec, per-key windows (``windows``, the one definition training and
streaming share), the network, the artifact format, inference, training, importers and evaluation.
"""
