"""Old path of the DCGAN networks: they live with their application, `latentvar.apps.images.dcgan` (the
images in `latentvar.apps.images.data`). Kept so that `from latentvar.dcgan import DCGANDecoder` works."""

from latentvar.apps.images.data import to_uint8, twemoji_tensor
from latentvar.apps.images.dcgan import (
    ConvEncoder,
    DCGANDecoder,
    DCGANDiscriminator,
    choose_sigma,
    discriminator_loss,
    elbo_loss,
    generator_loss,
    make_generator,
)

__all__ = [
    "ConvEncoder",
    "DCGANDecoder",
    "DCGANDiscriminator",
    "choose_sigma",
    "discriminator_loss",
    "elbo_loss",
    "generator_loss",
    "make_generator",
    "to_uint8",
    "twemoji_tensor",
]
