"""Every registered model: shapes, gradients, no reading of padding; the registry's errors."""

from __future__ import annotations

import pytest
import torch

from spoken_digits.errors import ParameterError
from spoken_digits.frontend.features import time_mask
from spoken_digits.models.nets import (
    MODELS,
    SEQUENCE_MODELS,
    SequenceConv1D,
    count_parameters,
    create_model,
    list_models,
    max_pool_ceil,
)

T, F, C = 16, 80, 10


def outputs(model: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(N, classes) from a word model; from a sequence model, its per-frame outputs (N, frames, classes + 1)
    averaged over each clip's valid frames, so every test below holds it to the same promises."""
    out = model(x, lengths)
    if isinstance(model, SequenceConv1D):
        valid = model.output_lengths(lengths)
        return (out * time_mask(valid, out.shape[1])[:, :, None]).sum(1) / valid[:, None]
    return out


@pytest.fixture(params=[*MODELS, *SEQUENCE_MODELS])
def model(request):
    torch.manual_seed(0)
    return create_model(request.param, n_features=F, n_classes=C)


def test_forward_shape_and_finite(model):
    logits = outputs(model, torch.randn(5, T, F), torch.full((5,), T))
    width = C + 1 if isinstance(model, SequenceConv1D) else C  # CTC's blank
    assert logits.shape == (5, width) and torch.isfinite(logits).all()


def test_every_parameter_gets_a_gradient(model):
    model.train()
    outputs(model, torch.randn(4, T, F), torch.tensor([T, T - 3, 7, T])).logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_padding_is_not_read(model):
    """A clip's logits are the same alone and inside a longer, zero-padded batch."""
    model.eval()
    torch.manual_seed(1)
    x = torch.randn(3, 20, F)
    lengths = torch.tensor([20, 9, 14])
    x[1, 9:] = 0
    x[2, 14:] = 0
    together = outputs(model, x, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = outputs(model, x[i : i + 1, :n], lengths[i : i + 1])
        torch.testing.assert_close(together[i], alone[0], rtol=1e-4, atol=1e-5)


def test_garbage_in_padding_does_not_change_the_answer(model):
    model.eval()
    x = torch.randn(2, 20, F)
    lengths = torch.tensor([20, 11])
    x[1, 11:] = 0
    clean = outputs(model, x, lengths)
    x[1, 11:] = 1e3  # whatever sits beyond a clip's length
    torch.testing.assert_close(outputs(model, x, lengths)[1], clean[1], rtol=1e-4, atol=1e-5)


def test_training_mode_ignores_padding_too(model):
    """In training mode (batch statistics, running averages updated) extra padding changes nothing either."""
    torch.manual_seed(2)
    x = torch.randn(4, 12, F)
    lengths = torch.tensor([12, 5, 9, 12])
    x[1, 5:], x[2, 9:] = 0, 0
    longer = torch.cat([x, torch.zeros(4, 30, F)], dim=1)  # the same clips with 30 more padded frames
    for module in model.modules():  # dropout draws more random numbers for longer inputs: not the point here
        if isinstance(module, (torch.nn.Dropout, torch.nn.RNNBase)):
            module.p = module.dropout = 0.0
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    for batch in (x, longer):
        model.load_state_dict(initial)
        logits = outputs(model.train(), batch, lengths)
        seen.append((logits, {k: v.clone() for k, v in model.state_dict().items()}))
    torch.testing.assert_close(seen[0][0], seen[1][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(seen[0][1], seen[1][1], rtol=1e-4, atol=1e-5)  # running mean and variance


def test_seed_lstm_is_the_seeds_architecture():
    m = create_model("seed_lstm", n_features=F, n_classes=C)
    assert (m.rnn.input_size, m.rnn.hidden_size, m.rnn.num_layers, m.rnn.bidirectional) == (80, 128, 1, False)
    assert (m.dense.in_features, m.dense.out_features, m.out.out_features) == (128, 100, 10)
    # Keras counts one LSTM bias vector (120,918 parameters); torch keeps two, 4*128 more.
    assert count_parameters(m) == 120_918 + 4 * 128
    forget = slice(128, 256)
    assert (m.rnn.bias_ih_l0[forget] == 1).all() and (m.rnn.bias_hh_l0 == 0).all()  # Keras unit_forget_bias
    w = m.rnn.weight_hh_l0.T  # Keras' recurrent kernel (128, 512) is orthogonal
    torch.testing.assert_close(w @ w.T, torch.eye(128), atol=1e-4, rtol=0)


def test_unknown_model_names_the_closest_and_lists_all():
    with pytest.raises(ParameterError, match=r"unknown model 'gur' \(did you mean 'gru'\?\); choose one of: seed_lstm"):
        create_model("gur", n_features=F, n_classes=C)


def test_bad_hyper_parameter_is_a_parameter_error():
    with pytest.raises(ParameterError, match="bad hyper-parameters for model 'gru'"):
        create_model("gru", n_features=F, n_classes=C, nonsense=3)


def test_hyper_parameters_change_the_model():
    small = count_parameters(create_model("gru", n_features=F, n_classes=C, hidden=32))
    assert small < count_parameters(create_model("gru", n_features=F, n_classes=C))


def test_registry_has_the_promised_models():
    assert {"seed_lstm", "gru", "bilstm", "cnn", "crnn", "lstm"} <= set(list_models())
    assert list_models("*lstm") == ["seed_lstm", "lstm", "bilstm"]


@pytest.mark.parametrize("pool", [(1, 2), (2, 2), (1, 1)])
def test_reshaped_max_pool_equals_ceil_mode_max_pool2d_on_non_negative_input(pool):
    x = torch.rand(3, 4, 17, 81)
    torch.testing.assert_close(max_pool_ceil(x, pool), torch.nn.MaxPool2d(pool, ceil_mode=True)(x), rtol=0, atol=0)


def test_a_sequence_model_is_refused_by_train(tmp_path):
    import dataclasses

    from spoken_digits.config import ModelConfig, RunConfig
    from spoken_digits.training.experiment import train_run

    cfg = dataclasses.replace(RunConfig(), model=ModelConfig(name="sequence_conv1d"))
    with pytest.raises(ParameterError, match="train-strings"):
        train_run(cfg, tmp_path, data=tmp_path, download=False)
