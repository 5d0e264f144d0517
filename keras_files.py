"""Reading a ``.keras`` archive's config before Keras does, for the judge and the models.

``tf_keras.models.load_model(path, safe_mode=True)`` alone does not keep code out in tf_keras
2.21: a file that is no zip archive goes to the legacy loader, which unpickles Lambda bytecode
from an HDF5 model, and a config's "module" entry is imported. So every loader here first
reads the config with ``read_config`` (the archive must be intact and hold exactly what
``model.save`` writes) and checks that it names only classes it expects.
"""
from __future__ import annotations

import json
import zipfile

# What model.save() writes into a .keras archive. Anything else (assets above all, which
# load_model would unpack to disk) is no file of ours.
KERAS_MEMBERS = frozenset({"config.json", "metadata.json", "model.weights.h5"})
MAX_CONFIG_BYTES = 1 << 20  # the judge's config.json has 15 kB, a model's 1 kB


def read_config(path) -> dict:
    """The parsed config.json of an intact ``.keras`` archive; ``ValueError`` saying what is
    wrong otherwise (not a zip archive, other members, a damaged member, an oversized or
    unparsable config)."""
    if not zipfile.is_zipfile(path):
        raise ValueError("it is not a .keras zip archive (truncated, or another format)")
    with zipfile.ZipFile(path) as archive:
        members = set(archive.namelist())
        if members != KERAS_MEMBERS:
            raise ValueError(f"the archive holds {sorted(members)}, a .keras file of ours "
                             f"holds {sorted(KERAS_MEMBERS)}")
        damaged = archive.testzip()
        if damaged is not None:
            raise ValueError(f"{damaged} in the archive is damaged (checksum mismatch)")
        if archive.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
            raise ValueError("its config.json is implausibly large")
        try:
            config = json.loads(archive.read("config.json"))
        except json.JSONDecodeError as err:
            raise ValueError(f"its config.json is not valid JSON ({err})") from err
    if not isinstance(config, dict):
        raise ValueError("its config.json holds no model config")
    return config
