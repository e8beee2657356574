"""seqjax.cells.gated_memory against the chapter's PyTorch NeuralWorkingMemoryModel, verbatim."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.cells.gated_memory import gated_memory, gated_memory_gate, maintenance
from seqjax.recurrence import rnn

torch = pytest.importorskip("torch")
nn = torch.nn


class NeuralWorkingMemoryModel(nn.Module):
    """The chapter's model (its forward, unchanged)."""

    def __init__(self, input_size, memory_size):
        super().__init__()
        self.input_layer = nn.Linear(input_size, memory_size)
        self.maintenance_cell = nn.GRUCell(memory_size, memory_size)
        self.update_gate = nn.Sequential(nn.Linear(input_size + memory_size, memory_size), nn.Sigmoid())

    def forward(self, x, prev_memory):
        combined = torch.cat((x, prev_memory), dim=1)
        update_weight = self.update_gate(combined)
        input_repr = torch.tanh(self.input_layer(x))
        maintained = self.maintenance_cell(prev_memory, prev_memory)
        return (1 - update_weight) * maintained + update_weight * input_repr


def to_seqjax(model: NeuralWorkingMemoryModel) -> dict:
    t = lambda a: jnp.asarray(a.detach().numpy())
    g = model.maintenance_cell
    m = g.hidden_size
    b = g.bias_ih.detach().numpy().copy()
    b[: 2 * m] += g.bias_hh.detach().numpy()[: 2 * m]        # r, z biases add; n keeps b_in
    return {
        "w_i": t(model.input_layer.weight).T, "b_i": t(model.input_layer.bias),
        "w_u": t(model.update_gate[0].weight).T, "b_u": t(model.update_gate[0].bias),
        "gru_w_i": t(g.weight_ih).T, "gru_w_h": t(g.weight_hh).T, "gru_b": jnp.asarray(b),
        "gru_b_hn": t(g.bias_hh)[2 * m:],
    }


def test_matches_the_chapters_pytorch_model():
    torch.manual_seed(0)
    model = NeuralWorkingMemoryModel(5, 7)
    xs = torch.rand(10, 3, 5)                  # [T, B, d] as the chapter's simulate_wm_task
    memory, states = torch.zeros(3, 7), []
    with torch.no_grad():
        for t in range(10):
            memory = model(xs[t], memory)
            states.append(memory)
    want = torch.stack(states).numpy().swapaxes(0, 1)
    got = rnn(gated_memory(), to_seqjax(model), jnp.asarray(xs.numpy()).swapaxes(0, 1))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_layout_and_gate():
    cell = gated_memory()
    params = cell.init(jax.random.key(0), 4, 6)
    assert {k: v.shape for k, v in params.items()} == {
        "w_i": (4, 6), "b_i": (6,), "w_u": (10, 6), "b_u": (6,),
        "gru_w_i": (6, 18), "gru_w_h": (6, 18), "gru_b": (18,), "gru_b_hn": (6,)}
    assert set(maintenance(params)) == {"w_i", "w_h", "b", "b_hn"}
    assert float(jnp.abs(params["w_u"]).max()) <= 1 / np.sqrt(10)      # PyTorch's U(+-1/sqrt(fan_in))
    # a gate saturated open copies the input representation; closed, it keeps the GRU's maintenance
    x, m = jnp.ones(4), jnp.full(6, 0.3)
    opened = params | {"b_u": jnp.full(6, 50.0)}
    assert float(jnp.min(gated_memory_gate(opened, m, x))) > 0.999
    np.testing.assert_allclose(cell.step(opened, m, x)[0], jnp.tanh(x @ params["w_i"] + params["b_i"]), atol=1e-5)


def test_bad_sizes():
    with pytest.raises(ValueError, match="hidden_features"):
        gated_memory().init(jax.random.key(0), 4, 0)
