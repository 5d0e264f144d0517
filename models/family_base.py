"""What every family's model shares, whichever base it builds on (``generative.GenerativeModel``,
whose colour model is the mono subnet on R, G and B, or ``whole_image.WholeImageModel``, whose
networks see the channels together): the config and metadata that travel in the model file,
the weights as one list in file order, the metric trackers, the training noise's seed and the
optimizers a training step uses.
"""
from __future__ import annotations

from typing import Optional

import tf_keras

from .batching import step_seed
from .checks import family_model_name
from .config import ModelConfig
from .networks import set_weights_in_order


class FamilyModel(tf_keras.Model):
    kind = ""  # the family's registry key
    conditional = False  # True: the family's parts also take the images' class labels
    default_sampler = "standard"  # the latent sampler generation uses unless told
    prior_description = "standard normal N(0, I)"  # what generation draws by default

    def __init__(self, config: ModelConfig, metadata: Optional[dict] = None, **kwargs):
        kwargs.setdefault("name", family_model_name(type(self), config))
        super().__init__(**kwargs)
        self.config = config
        # Training data, epochs, seconds, seed ...: plain values, saved with the config.
        self.metadata = dict(metadata or {})
        # A family sets ``self.trackers``: its metrics' trackers by name (trackers.py).

    # -- files: the config and metadata as plain values; the weights are Keras' own business --
    def get_config(self):
        return {"config": self.config.to_dict(), "metadata": self.metadata}

    @classmethod
    def from_config(cls, config):
        return cls(ModelConfig.from_dict(config["config"]), metadata=config.get("metadata"))

    def networks(self) -> list:
        """Every network whose weights the model file holds, in file order."""
        raise NotImplementedError

    def extra_state_variables(self) -> list:
        """The variables of the model's state beyond its networks, in file order (a prior's
        flow, a class prior); ``network_weights`` ends with them. Default: none."""
        return []

    def network_weights(self) -> list:
        """The weights of ``networks()``, then ``extra_state_variables``, as arrays: every
        learned parameter (``Model.get_weights()`` would add the metric trackers' state)."""
        return ([w for net in self.networks() for w in net.get_weights()]
                + [variable.numpy() for variable in self.extra_state_variables()])

    def set_network_weights(self, weights: list) -> None:
        """The inverse of ``network_weights``: a list of the same arrays in the same order."""
        weights, extra = list(weights), self.extra_state_variables()
        expected = sum(len(net.weights) for net in self.networks()) + len(extra)
        if len(weights) != expected:
            raise ValueError(f"a {self.kind!r} model holds {expected} weight arrays, got "
                             f"{len(weights)}.")
        for variable, value in zip(extra, set_weights_in_order(self.networks(), weights)):
            variable.assign(value)

    # -- training --------------------------------------------------------------------------------
    @property
    def metrics(self):
        return list(self.trackers.values())

    # The training noise is stateless, a function of (the fit's seed, the replica, the step):
    # a resumed training draws what an uninterrupted one would. fit_model sets the seed.
    noise_seed = 0

    def _step_seed(self):
        return step_seed(self.noise_seed, self.optimizer.iterations)

    def step_optimizers(self) -> list:
        """Every optimizer a training step uses (``fit_model``'s rate schedule sets each)."""
        return [self.optimizer]

    def build_optimizers(self) -> None:
        """Creates the state of every optimizer for the variables it steps (``fit_model``,
        before the first step: a training step that creates variables is traced twice)."""
        self.optimizer.build(self.trainable_variables)
