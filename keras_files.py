"""Reading a ``.keras`` archive's config before Keras does, for the judge and the models.

``tf_keras.models.load_model(path, safe_mode=True)`` alone does not keep code out in tf_keras
2.21: a file that is no zip archive goes to the legacy loader, which unpickles Lambda bytecode
from an HDF5 model, and a config's "module" entry is imported. So every loader here first
reads the config with ``read_config`` (the archive must be intact and hold exactly what
``model.save`` writes) and checks that it names only classes it expects.

A file must not make us build (or inflate) more than we mean to either: ``LIMITS`` is the one
list of how large a file's config may ask anything to be, and ``MAX_MEMBER_BYTES`` how large
each archive member may be once inflated. Both sit far above every shipped file; a file
beyond them is refused before anything is built from it, the field and the limit named.
"""
from __future__ import annotations

import json
import zipfile

# What model.save() writes into a .keras archive. Anything else (assets above all, which
# load_model would unpack to disk) is no file of ours.
KERAS_MEMBERS = frozenset({"config.json", "metadata.json", "model.weights.h5"})

# The sizes a config may ask for (models.ModelConfig, the samplers in models/samplers.py),
# and the parameter count it may imply; the shipped files' largest value in the comment. A
# 3 kB file asking for filters [32, 10000000] would otherwise allocate until memory runs out.
# The judges (verification_net.py) are held to their own architecture exactly.
LIMITS = {
    "latent_dim": 1024,          # 32 (ae_mono_complete)
    "filters": 1024,             # each of the two convolutions; 64
    "hidden_units": 8192,        # a model's dense layer, a flow's MADE layers; 256
    "block_convs": 16,           # 1
    "categorical_bins": 256,     # a pixel has at most 256 values; 16
    "pack": 16,                  # a GAN's samples per discriminator verdict (PacGAN); 2
    "layers": 64,                # a flow sampler's MADE bijectors; 6
    "components": 1024,          # a Gaussian mixture's; 10
    "steps": 10_000,             # a diffusion sampler's noise steps; 200
    "blocks": 64,                # a diffusion sampler's residual blocks; 3
    "neighbours": 1024,          # a neighbour term's graph, per training image; 10
    "parameters": 50_000_000,    # implied by the sizes above; 1.8 M (vae_mono_complete)
}
# How large each member may be once inflated (zipfile stops reading a member at its declared
# size, so these bound what reading an archive can inflate). Shipped: the judge's config.json
# 15 kB, a model's 2 kB; metadata.json 64 bytes; weights 7 MB; 50 M float32 parameters fill
# 200 MB.
MAX_MEMBER_BYTES = {"config.json": 1 << 20, "metadata.json": 1 << 16,
                    "model.weights.h5": 256 << 20}
MAX_CONFIG_BYTES = MAX_MEMBER_BYTES["config.json"]


def check_limit(field: str, value, limit: str = "") -> None:
    """``ValueError`` naming ``field`` unless ``value`` <= ``LIMITS[limit or field]``."""
    bound = LIMITS[limit or field]
    if value > bound:
        raise ValueError(f"{field} = {value:,} is above the limit {bound:,} "
                         f"(keras_files.LIMITS[{limit or field!r}]); no shipped model comes "
                         "near it (a file asking for it is damaged or not one of ours): ask "
                         "for less")


def read_config(path) -> dict:
    """The parsed config.json of an intact ``.keras`` archive; ``ValueError`` saying what is
    wrong otherwise (not a zip archive, other members, a member larger than
    ``MAX_MEMBER_BYTES`` inflated, a damaged member, an unparsable config)."""
    if not zipfile.is_zipfile(path):
        raise ValueError("it is not a .keras zip archive (truncated, or another format)")
    with zipfile.ZipFile(path) as archive:
        members = set(archive.namelist())
        if members != KERAS_MEMBERS:
            raise ValueError(f"the archive holds {sorted(members)}, a .keras file of ours "
                             f"holds {sorted(KERAS_MEMBERS)}")
        for info in archive.infolist():
            # Checked before anything is inflated (testzip inflates every member).
            if info.file_size > MAX_MEMBER_BYTES[info.filename]:
                raise ValueError(f"its {info.filename} inflates to {info.file_size:,} bytes, "
                                 f"above the limit {MAX_MEMBER_BYTES[info.filename]:,} "
                                 "(keras_files.MAX_MEMBER_BYTES)")
        damaged = archive.testzip()
        if damaged is not None:
            raise ValueError(f"{damaged} in the archive is damaged (checksum mismatch)")
        try:
            config = json.loads(archive.read("config.json"))
        except json.JSONDecodeError as err:
            raise ValueError(f"its config.json is not valid JSON ({err})") from err
    if not isinstance(config, dict):
        raise ValueError("its config.json holds no model config")
    return config
