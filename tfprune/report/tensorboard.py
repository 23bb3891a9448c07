"""TensorBoard summaries of a pruning run (TensorFlow only).

Writes, at every epoch end, the mask sparsity of each wrapper and of the whole
model, the fraction of exact zeros in the effective weights, every numeric
value in the Keras `logs` (loss, accuracy, and what the method callbacks put
there: penalty, `w_minus_z/<layer>`, `slr_s`, ...) and, optionally, weight
histograms. Uses `tf.summary`; TensorFlow is imported only when the callback
first writes, so importing tfprune does not need it.
"""

import keras
from keras import ops

from tfprune.core.state import zero_fraction
from tfprune.core.wrapper import model_sparsity, wrappers_of


@keras.saving.register_keras_serializable(package="tfprune")
class PruningSummaries(keras.callbacks.Callback):
    """Writes pruning scalars and weight histograms for TensorBoard.

    Scalars (step = epoch): `sparsity/<layer>` and `sparsity/overall` (zeros
    in the masks), `weight_zeros/<layer>` and `weight_zeros/overall` (exact
    zeros in the effective weights: during ADMM/SLR the masks are all-ones
    and this shows how sparse W itself is), and `logs/<key>` for every number
    in the epoch's logs. Histograms: `weights/<layer>/<attr>` of the effective
    weights. Put it *after* the method callback so that it sees the
    method's logs.

    Args:
        log_dir: directory of the TensorBoard event files.
        histograms: whether to write weight histograms.
        histogram_freq: write histograms every this many epochs.

    Example:

    ```python
    model.fit(x, y, epochs=10, callbacks=[tfprune.callbacks.SLR(),
                                          tfprune.callbacks.PruningSummaries("runs/slr")])
    ```
    """

    def __init__(self, log_dir, histograms=True, histogram_freq=1):
        super().__init__()
        if not log_dir:
            raise ValueError("PruningSummaries: `log_dir` must be a directory path.")
        if int(histogram_freq) <= 0:
            raise ValueError(
                f"PruningSummaries: `histogram_freq` must be > 0; got {histogram_freq!r}."
            )
        self.log_dir = str(log_dir)
        self.histograms = bool(histograms)
        self.histogram_freq = int(histogram_freq)
        self._writer = None

    def _get_writer(self):
        if self._writer is None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(self.log_dir)
        return self._writer

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        wrappers = wrappers_of(self.model, "PruningSummaries")
        writer = self._get_writer()
        with writer.as_default(step=epoch):
            for w in wrappers:
                tf.summary.scalar(f"sparsity/{w.name}", model_sparsity([w]))
                tf.summary.scalar(f"weight_zeros/{w.name}", zero_fraction(w.effective_weights()))
            tf.summary.scalar("sparsity/overall", model_sparsity(wrappers))
            tf.summary.scalar(
                "weight_zeros/overall",
                zero_fraction([v for w in wrappers for v in w.effective_weights()]),
            )
            for key, value in (logs or {}).items():
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    continue
                tf.summary.scalar(f"logs/{key}", value)
            if self.histograms and epoch % self.histogram_freq == 0:
                for w in wrappers:
                    for spec, value in zip(w.kernel_specs, w.effective_weights()):
                        tf.summary.histogram(
                            f"weights/{w.name}/{spec.key}", ops.convert_to_numpy(value)
                        )
        writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()

    def get_config(self):
        return {
            "log_dir": self.log_dir,
            "histograms": self.histograms,
            "histogram_freq": self.histogram_freq,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
