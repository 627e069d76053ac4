"""The delay layer: arrival steps, straight-through and fractional gradients, linear filtering, bad input."""
import pytest
import torch

from torch_models.delays import Delays, delayed_weighted_sum, exponential_filter, lagged_products, shift


def trains(seed=0, batch=3, time=30, channels=4):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, time, channels, generator=generator, dtype=torch.float64) < 0.3).double()


def test_integer_delays_move_every_spike_by_the_rounded_delay():
    x = trains()
    steps = torch.tensor([0.0, 2.49, 2.5, 7.0], dtype=torch.float64)
    y = shift(x, steps, max_steps=8)
    for channel, whole in enumerate([0, 2, 3, 7]):  # half up, as Brian2 rounds d/dt + 0.5
        assert torch.equal(y[:, whole:, channel], x[:, :30 - whole, channel])
        assert y[:, :whole, channel].sum() == 0


def test_straight_through_gradient_is_the_interpolation_slope():
    x, weights = trains(1), torch.randn(3, 30, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    steps = torch.tensor([1.2, 3.0, 4.4, 6.0], dtype=torch.float64, requires_grad=True)
    (shift(x, steps, 8) * weights).sum().backward()
    whole = [1, 3, 4, 6]
    for channel, n in enumerate(whole):
        before = torch.cat([torch.zeros(3, n + 1, dtype=torch.float64), x[:, :29 - n, channel]], 1)
        now = torch.cat([torch.zeros(3, n, dtype=torch.float64), x[:, :30 - n, channel]], 1)
        assert steps.grad[channel] == pytest.approx(float(((before - now) * weights[..., channel]).sum()), abs=1e-12)


def test_fractional_gradient_matches_finite_differences():
    x = trains(3)
    weights = torch.randn(3, 30, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    loss = lambda steps: (exponential_filter(shift(x, steps, 8, "fractional"), 0.8) * weights).sum()
    steps = torch.tensor([0.3, 2.7, 5.5, 7.2], dtype=torch.float64, requires_grad=True)
    loss(steps).backward()
    assert steps.grad.abs().min() > 1e-3
    for channel in range(4):
        bump = torch.zeros(4, dtype=torch.float64)
        bump[channel] = 1e-6
        numeric = (loss(steps.detach() + bump) - loss(steps.detach() - bump)) / 2e-6
        assert steps.grad[channel] == pytest.approx(float(numeric), rel=1e-6)


def test_fractional_delay_splits_each_spike_between_two_steps():
    x = torch.zeros(1, 10, 1, dtype=torch.float64)
    x[0, 2, 0] = 1
    y = shift(x, torch.tensor([3.25], dtype=torch.float64), 5, "fractional")[0, :, 0]
    assert y.tolist() == pytest.approx([0, 0, 0, 0, 0, 0.75, 0.25, 0, 0, 0])


def test_exponential_filter_equals_the_recursion():
    x = trains(5)
    y, expected = exponential_filter(x, 0.9), torch.zeros_like(x)
    previous = torch.zeros(3, 4, dtype=torch.float64)
    for t in range(30):
        previous = 0.9 * previous + x[:, t]
        expected[:, t] = previous
    assert torch.allclose(y, expected, atol=1e-13, rtol=0)


@pytest.mark.parametrize("make, message", [
    (lambda: Delays([0, 3, 9], max_steps=8), r"Delays.initial_steps: .*allowed: \[0, 8\]"),
    (lambda: Delays([-1, 3], max_steps=8), r"Delays.initial_steps: .*allowed: \[0, 8\]"),
    (lambda: Delays([float("nan")], max_steps=8), "Delays.initial_steps: delays must be finite"),
    (lambda: Delays([1], max_steps=8, mode="gaussian"), r"Delays.mode 'gaussian'; allowed"),
    (lambda: Delays([1], max_steps=2.5), "Delays.max_steps"),
    (lambda: Delays([1, 2], max_steps=8)(torch.zeros(2, 5, 3)), r"expected \(batch, time, 2\)"),
    (lambda: lagged_products(torch.zeros(2, 5), torch.zeros(2, 6), torch.zeros(3), 4),
     r"lagged_products: a \(2, 5\) and x \(2, 6\); expected both \(batch, time\)"),
    (lambda: delayed_weighted_sum(torch.zeros(2, 5, 3), torch.zeros(3, 4), torch.zeros(4, 3), 4),
     r"delayed_weighted_sum: x \(2, 5, 3\), weight \(3, 4\), steps \(4, 3\); expected"),
])
def test_bad_input_is_refused_with_the_field_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("mode", ["integer", "fractional"])
def test_lagged_products_equal_shift_then_sum(mode):
    """Sums of products with a delayed train, from the correlation at every lag: values and gradients (a, x
    and the delays) equal to shift followed by the sum, float64."""
    generator = torch.Generator().manual_seed(0)
    a, x = (torch.rand(3, 30, generator=generator, dtype=torch.float64, requires_grad=True) for _ in range(2))
    steps = torch.tensor([0.0, 0.4, 2.5, 7.49, 9.0, 11.2], dtype=torch.float64, requires_grad=True)
    reference = (a[..., None] * shift(x[..., None].expand(-1, -1, 6), steps, 9, mode)).sum(1)
    result = lagged_products(a, x, steps, 9, mode)
    weights = torch.rand(result.shape, generator=generator, dtype=torch.float64)
    gradients = [torch.autograd.grad((value * weights).sum(), (a, x, steps)) for value in (reference, result)]
    assert torch.allclose(result, reference, rtol=0, atol=1e-12)
    for expected, got in zip(*gradients):
        assert torch.allclose(got, expected, rtol=0, atol=1e-12)
    assert gradients[0][2].abs().max() > 0.1  # the delays' gradient is not trivially zero


@pytest.mark.parametrize("mode", ["integer", "fractional"])
def test_delayed_weighted_sum_equals_per_synapse_shift_then_sum(mode):
    """A dense projection with one delay per synapse as one convolution: values and gradients (weights and
    delays) equal to shifting every synapse's copy of its source train and summing, float64."""
    generator = torch.Generator().manual_seed(0)
    x = trains(5, channels=5)
    weight = torch.randn(5, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    steps = torch.tensor([[0.0, 0.4, 2.5, 7.49], [9.0, 11.2, 12.0, 3.3], [1.0, 5.5, 0.2, 6.6],
                          [10.4, 2.0, 4.7, 8.0], [0.6, 11.9, 3.5, 1.5]], dtype=torch.float64, requires_grad=True)
    copies = x[..., None].expand(-1, -1, 5, 4).reshape(3, 30, 20)
    reference = (shift(copies, steps.reshape(-1), 12, mode).reshape(3, 30, 5, 4) * weight).sum(2)
    result = delayed_weighted_sum(x, weight, steps, 12, mode)
    weights = torch.rand(result.shape, generator=generator, dtype=torch.float64)
    gradients = [torch.autograd.grad((value * weights).sum(), (weight, steps)) for value in (reference, result)]
    assert torch.allclose(result, reference, rtol=0, atol=1e-12)
    for expected, got in zip(*gradients):
        assert torch.allclose(got, expected, rtol=0, atol=1e-12)
    assert gradients[0][1].abs().max() > 0.1
