"""The GAN's networks and PacGAN's packing (models.gan_networks): shapes, ranges, the order
packing puts images in, and refusals. Tiny networks: a second."""
from __future__ import annotations

import numpy as np
import pytest

from models.gan_networks import gan_discriminator, gan_generator, pack_images


@pytest.mark.parametrize("channels", [1, 3])
def test_the_generator_makes_images_the_discriminator_judges(channels):
    generator = gan_generator(5, channels, filters=(4, 8))
    z = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    images = generator(z, training=False).numpy()
    assert images.shape == (6, 28, 28, channels)
    assert images.min() > 0 and images.max() < 1
    for pack in (1, 2, 3):
        logits = gan_discriminator(channels, pack, filters=(4, 8))(pack_images(images, pack))
        assert logits.shape == (6 // pack, 1)


def test_packing_puts_each_group_side_by_side_in_the_channels():
    images = np.arange(4 * 28 * 28 * 3, dtype=np.float32).reshape(4, 28, 28, 3)
    packed = pack_images(images, 2).numpy()
    assert packed.shape == (2, 28, 28, 6)
    for group in range(2):
        for member in range(2):
            np.testing.assert_array_equal(packed[group, ..., 3 * member:3 * member + 3],
                                          images[2 * group + member])
    np.testing.assert_array_equal(pack_images(images, 1).numpy(), images)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        gan_generator(5, 2)
    with pytest.raises(ValueError, match="pack must be an integer >= 1"):
        gan_discriminator(1, 0)
    with pytest.raises(ValueError, match="filters must be two"):
        gan_generator(5, 1, filters=(4,))
    with pytest.raises(Exception, match="multiple of the packing degree"):
        pack_images(np.zeros((3, 28, 28, 1), np.float32), 2)
