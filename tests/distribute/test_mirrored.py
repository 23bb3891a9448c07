"""MirroredStrategy (one process, several replicas): what tfprune.distribute adds.

The methods' mirrored equality tests live with the methods
(tests/methods/test_magnitude.py, test_proximal.py, test_admm.py, test_tapering.py,
hyperspherical/test_callback.py: `test_mirrored_strategy_*`); docs/distributed.md
lists them.
"""

import keras
import pytest
from conftest import small_convnet, toy_data

import tfprune


@pytest.mark.tf_only
def test_steps_per_execution_above_one_with_replicas_is_a_clear_error(mirrored_strategy):
    x, y = toy_data(64)
    with mirrored_strategy.scope():
        model = tfprune.wrap(small_convnet(), tfprune.Sparsity(0.5))
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), steps_per_execution=2)
    method = tfprune.callbacks.MagnitudePruning(tfprune.schedules.ConstantSparsity(0.5, 0))
    with pytest.raises(ValueError, match=r"steps_per_execution=2 fails under .* 2 replicas .*19246"):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[method])
