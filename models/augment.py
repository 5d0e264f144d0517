"""Stateless image augmentations: each a function of its images and a stateless seed, so a
resumed training draws what an uninterrupted one would. M2's classifier views use all three;
``fit_model(shift_pixels=n)`` moves every training batch by whole pixels."""
from __future__ import annotations

import math

import tensorflow as tf


def cut_out(x, seed, size: int):
    """Images (B, 28, 28, C) each with a ``size`` x ``size`` square set to 0 (Cutout, DeVries
    and Taylor 2017) centred at a uniform pixel (clipped at the border); the squares a function
    of the stateless ``seed``."""
    centres = tf.random.stateless_uniform([tf.shape(x)[0], 2], seed, 0, 28, dtype=tf.int32)
    grid = tf.range(28)
    low, high = centres - size // 2, centres - size // 2 + size
    rows = (grid >= low[:, :1]) & (grid < high[:, :1])  # (B, 28)
    columns = (grid >= low[:, 1:]) & (grid < high[:, 1:])
    square = rows[:, :, tf.newaxis] & columns[:, tf.newaxis, :]
    return x * tf.cast(~square, x.dtype)[..., tf.newaxis]


def _transformed(x, transforms, interpolation: str):
    """Images (B, 28, 28, C) under per-image projective ``transforms`` (B, 8): output pixel
    (column u, row v) reads the input at (a0 u + a1 v + a2, b0 u + b1 v + b2), rows
    [a0, a1, a2, b0, b1, b2, 0, 0]; zeros move in."""
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=tf.shape(x)[1:3], fill_value=0.0,
        interpolation=interpolation, fill_mode="CONSTANT")


def shifted(x, seed, pixels: int):
    """Images (B, 28, 28, C) each moved by whole pixels, up to ``pixels`` each way (zeros
    move in); the shifts a function of the stateless ``seed``."""
    count = tf.shape(x)[0]
    moves = tf.random.stateless_uniform([count, 2], seed, -pixels, pixels + 1, dtype=tf.int32)
    moves = tf.cast(moves, tf.float32)
    one, zero = tf.ones([count, 1]), tf.zeros([count, 1])
    transforms = tf.concat([one, zero, moves[:, :1], zero, one, moves[:, 1:], zero, zero], 1)
    return _transformed(x, transforms, "NEAREST")


def warped(x, seed, degrees: float, scale: float):
    """Images (B, 28, 28, C) each rotated by up to ``degrees`` either way and scaled by a
    factor in [1 - ``scale``, 1 + ``scale``] about the image centre (bilinear; zeros move in);
    the angles and factors a function of the stateless ``seed``."""
    draws = tf.random.stateless_uniform([tf.shape(x)[0], 2], seed, -1.0, 1.0)
    angle = draws[:, :1] * degrees * math.pi / 180
    factor = 1.0 + draws[:, 1:] * scale
    cos, sin = tf.cos(angle) / factor, tf.sin(angle) / factor
    centre = 13.5  # the output's centre reads the input's
    zero = tf.zeros_like(cos)
    transforms = tf.concat([cos, -sin, centre * (1 - cos + sin),
                            sin, cos, centre * (1 - sin - cos), zero, zero], 1)
    return _transformed(x, transforms, "BILINEAR")
