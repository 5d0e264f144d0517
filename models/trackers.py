"""The training metrics' running means, kept out of model files.

A tracker's total and count are the progress of one epoch, reset at the next: not the model's
state. Model files written before a family gained a tracker (M2's ``pseudo_labelled``, the
CVAE's ``bayes_cross_entropy``) hold no variables for it, and Keras refuses such a file when the
tracker's variables are part of the saved state; so a tracker neither saves nor loads them.
"""
import tf_keras


class Tracker(tf_keras.metrics.Mean):
    """A running mean reported by ``train_step`` / ``test_step``, not stored in model files
    (what an older file holds for it is ignored)."""

    def save_own_variables(self, store):
        pass

    def load_own_variables(self, store):
        pass


def trackers(names) -> dict:
    """``{name: Tracker}`` for each of ``names``, in order."""
    return {name: Tracker(name=name) for name in names}
