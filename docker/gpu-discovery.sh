#!/usr/bin/env bash
# Spark GPU discovery script: the worker's GPUs as Spark expects them ({"name": "gpu", "addresses": [...]}).
addresses=$(nvidia-smi --query-gpu=index --format=csv,noheader | sed -e 's/^ *//' -e 's/.*/"&"/' | paste -sd, -)
echo "{\"name\": \"gpu\", \"addresses\": [${addresses}]}"
