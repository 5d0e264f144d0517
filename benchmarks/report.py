"""The benchmarks' common ending: record TensorFlow's thread settings, write the figures as
JSON (atomically) and print them one per line."""
from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf

from atomic_io import atomic_path


def report(results: dict, path) -> Path:
    """Add ``tf_threads`` (inter-op, intra-op; 0 = TensorFlow's choice) to ``results``, write
    them to ``path`` and print them."""
    results = {**results, "tf_threads": [tf.config.threading.get_inter_op_parallelism_threads(),
                                         tf.config.threading.get_intra_op_parallelism_threads()]}
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    width = max(map(len, results)) + 2
    for key, value in results.items():
        print(f"{key:{width}s} {value}")
    return Path(path)
