"""Delay layer: seed 003's code against torch_models.delays, one training step of the seed's simplified
sound-localization problem (one delay layer, exponential integration, product with the fixed first ear,
max-sum loss, SGD on the delays). Issue 4's goal: ours >= 100x faster at equal loss values.

Setting of the seed: batch 200, 36 classes, 2 ears, MAX_DELAY 20, DURATION 50 steps, EFFECTIVE_DURATION
3*20 + 50 = 110 steps, float32, SGD with lr 0.5 (DelayLayer(lr_delay=0.5) in the seed's training cell), TAU 40
decaying by exp(-0.01) per step (one batch per epoch) down to 2.

Three implementations of the same step, fed the same batches and the same initial delays:
  seed           a transcription of seed 003's code (class Seed003 below: DelayLayer, DelayUpdate, snn_sl and
                 the body of the training loop), the reference being timed.
  ours (delay)   torch_models.delays: exponential_filter on the two ear trains of each sample (the seed filters
                 its 72 per-class copies; filtering commutes with shifting, see `Ours`), then lagged_products
                 (integer mode, max_steps = 2*MAX_DELAY): for each class the sum over time of the fixed ear's
                 trace times the second ear's trace shifted by the class's delay, with shift's values and
                 straight-through gradient, from the correlation at every lag (no per-class copies); the
                 fixed ear delayed by MAX_DELAY, the learned ear by MAX_DELAY - d_seed; vectorized max-sum
                 loss; SGD.
  ours (advance) the same calls, with time reversed around the shift, so that its delays act as the seed's
                 advances: the fixed ear advanced by MAX_DELAY, the learned one by MAX_DELAY + d_seed.
The forward passes (so the first loss) agree in all three. The two conventions differ in the straight-through
gradient (see `Ours`): only 'advance' reproduces the seed's gradients, hence its losses at later steps too.
"Agree" means to float32 precision: the sums of products (the outputs, ~65-650) differ by up to ~4e-6 relative
(109 float32 accumulations in a different order: the seed's recurrence, ours' matmul with float32 powers of
alpha), and the loss, sum of (output - reference)^2 with |output - reference| a few % of the output, amplifies
that to ~1e-5 relative; the delays in force stay identical.

Prints the losses of a few consecutive steps side by side, the median time per training step (forward + loss +
backward + optimizer step; batch generation excluded, layout conversion of the seed's batch included for ours),
measured interleaved in one process, the speed-up, and ours' time per step as the maximum delay grows.

    python bench/delay_layer.py [--repeats 30] [--seed 0] [--steps 6] [--threads 1]
                                [--out bench/results/delay_layer.json]
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from torch_models.delays import exponential_filter, lagged_products

dtype = torch.float
# Losses the seed's notebook printed for its epochs 1-10 (one batch each) with np.random.seed(0): the transcription
# reproduces them with --seed 0, a check that it is faithful.
NOTEBOOK_LOSSES = (1353.12097, 385.64023, 162.11420, 150.11247, 114.06781, 92.72813, 63.33299, 61.49543, 59.54112,
                   41.32266)


# ------------------------------------------------------------------------------------------------------------
# REFERENCE: transcription of seed 003's code (shared/seeds/003_d682ee018d81113f.txt: cells "Delay layer",
# "Surrogate Delays", and in "Simplified sound localization problem with one delay layer": "Relevant
# definitions", "Input target generators" (input_signal_2), "Batch generator function" (get_batch), "Synaptic
# integration for the sound localization problem" (snn_sl) and the body of "Training loop and parameters").
# The notebook's globals (constants, delay_layer, delay_fn, MAX_SUM, TAU) become attributes of Seed003 (`s.`);
# statements are otherwise kept as in the seed; plotting and printing are left out. Two mechanical changes:
# DelayUpdate gets max_delay as an argument instead of reading the global delay_layer, and get_batch's
# generator is consumed with next() instead of a for loop (it yields one batch).
# ------------------------------------------------------------------------------------------------------------
class DelayUpdate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, delays, max_delay):
        delays_forward = torch.round(torch.clamp(delays, min=-max_delay, max=max_delay))
        return delays_forward

    @staticmethod
    def backward(ctx, grad_output):
        delays_in = grad_output
        return delays_in, None


class SeedDelayLayer(nn.Module):
    """ Custom Delay Layer (seed 003) """

    def __init__(self, s, max_delay_in=19, train_delays=True, num_ear=2,
                 constant_delays=False, constant_value=0, lr_delay=1e-3):
        super().__init__()
        self.s = s
        self.max_delay = max_delay_in
        self.trainable_delays = train_delays
        self.number_inputs = s.NUMBER_INPUTS
        self.constant_delays = constant_delays
        self.constant_value = constant_value
        self.lr_delay = lr_delay
        self.effective_duration = s.EFFECTIVE_DURATION
        self.delays_out = self._init_delay_vector()
        self.optimizer_delay = self._init_optimizer()

    def _init_delay_vector(self):
        s = self.s
        if s.FIX_FIRST_INPUT:
            self.number_inputs = s.NUMBER_INPUTS - 1
        else:
            self.number_inputs = s.NUMBER_INPUTS
        if self.constant_delays:
            delays = torch.nn.parameter.Parameter(torch.FloatTensor(
                self.constant_value * np.ones((self.number_inputs, s.NUMBER_CLASSES), dtype=int)), requires_grad=True)
        else:
            delays_numpy = np.random.randint(1, self.max_delay,
                                             size=(self.number_inputs, s.NUMBER_CLASSES), dtype=int)
            delays = torch.nn.parameter.Parameter(torch.FloatTensor(delays_numpy), requires_grad=True)
        return delays

    def _init_optimizer(self):
        optimizer_delay = torch.optim.SGD([self.delays_out], lr=self.lr_delay)
        return optimizer_delay

    def forward(self, spikes_in):
        s = self.s
        input_train = spikes_in[:, :, :, :, None]
        if s.FIX_FIRST_INPUT:
            input_first = input_train[:, 0:1, :, :, :]
            input_train = input_train[:, 1:, :, :, :]
        dlys = DelayUpdate.apply(self.delays_out, self.max_delay)
        batch_size, inputs, classes, duration, _ = input_train.size()
        # initialize M to identity transform and resize
        translate_mat = np.array([[1., 0., 0.], [0., 1., 0.]])
        translate_mat = torch.FloatTensor(np.resize(translate_mat, (batch_size, inputs, classes, 2, 3)))
        # translate with delays
        translate_mat[:, :, :, 0, 2] = 2 / (duration - 1) * dlys
        # create normalized 1D grid and resize
        x_t = np.linspace(-1, 1, duration)
        y_t = np.zeros((1, duration))  # 1D: all y points are zeros
        ones = np.ones(np.prod(x_t.shape))
        grid = np.vstack([x_t.flatten(), y_t.flatten(), ones])  # an array of points (x, y, 1) shape (3, :)
        grid = torch.FloatTensor(np.resize(grid, (batch_size, inputs, classes, 3, duration)))
        # transform the sampling grid i.e. batch multiply
        translate_grid = torch.matmul(translate_mat, grid)
        # reshape to (num_batch, height, width, 2)
        translate_grid = torch.transpose(translate_grid, 3, 4)
        x_points = translate_grid[:, :, :, :, 0]
        corr_center = ((x_points + 1.) * (duration - 1)) * 0.5
        # grab 4 nearest corner points for each (x_t, y_t)
        corr_left = torch.floor(torch.round(corr_center, decimals=s.ROUND_DECIMALS)).type(torch.int64)
        corr_right = corr_left + 1
        # Calculate weights
        weight_right = (corr_right - corr_center)
        weight_left = (corr_center - corr_left)
        # Padding for values that are evaluated outside the input range
        pad_right = torch.amax(corr_right) + 1 - duration
        pad_left = torch.abs(torch.amin(corr_left))
        zeros_right = torch.zeros(size=(batch_size, inputs, classes, pad_right, 1))
        zeros_left = torch.zeros(size=(batch_size, inputs, classes, pad_left, 1))  # (unused in the seed, too)
        input_train = torch.cat((input_train, zeros_right), dim=3)
        # Get the new values after the transformation
        value_left = input_train[np.arange(batch_size)[:, None, None, None], np.arange(inputs)[None, :, None, None],
                                 np.arange(classes)[None, None, :, None], corr_left][:, :, :, :, 0]
        value_right = input_train[np.arange(batch_size)[:, None, None, None], np.arange(inputs)[None, :, None, None],
                                  np.arange(classes)[None, None, :, None], corr_right][:, :, :, :, 0]
        # compute output
        output_train = weight_right*value_left + weight_left*value_right
        if s.FIX_FIRST_INPUT:
            output_train = torch.concatenate((input_first[:, :, :, :, 0], output_train), dim=1)
        return output_train


class Seed003:
    """Seed 003's sound-localization setting with one delay layer; max_delay is the seed's MAX_DELAY (20)."""

    def __init__(self, seed=0, max_delay=20):
        s = self
        # Relevant definitions
        SECOND = 1  # noqa: F841 (as in the seed)
        MS = 1e-3
        HZ = 1
        s.DT = 1 * MS
        s.ANF_PER_EAR = 100
        s.ENVELOPE_POWER = 10
        s.RATE_MAX = 600 * HZ
        s.F = 50 * HZ
        s.DURATION = 50 * MS
        s.DURATION_STEPS = int(np.round(s.DURATION / s.DT))
        s.ANG_STEP = 5
        s.NUMBER_CLASSES = int(180/s.ANG_STEP)
        s.BATCH_SIZE = 200
        s.MAX_DELAY = max_delay
        s.MAX_DELAY_DURATION = s.MAX_DELAY
        s.NUM_EAR = 2
        s.NUMBER_INPUTS = s.NUM_EAR
        s.LR_DELAY = 0.05  # defined but unused in the seed: its DelayLayer gets lr_delay=0.5
        s.EFFECTIVE_DURATION = s.MAX_DELAY * 3 + int(np.round(s.DURATION / s.DT))
        s.TAU, s.TAU_DECAY, s.TAU_DECAY_FLAG = 40, 0.01, True
        s.ROUND_DECIMALS = 4
        s.MAX_SUM = np.zeros((s.BATCH_SIZE,))
        s.FIX_FIRST_INPUT = True
        s.ALL_RANDOM = 1
        # Batch generator function and related
        np.random.seed(seed)
        torch.manual_seed(seed)
        s.spikes_out_all, s.ipds_hot_all = s.input_signal_2()
        # Training loop and parameters
        np.random.seed(seed)
        torch.manual_seed(seed)
        s.delay_layer = SeedDelayLayer(s, lr_delay=0.5, constant_delays=False, constant_value=0,
                                       max_delay_in=s.MAX_DELAY)
        s.optimizer_delay_apply = s.delay_layer.optimizer_delay

    def input_signal_2(self):
        s = self
        ipds_ang = np.arange(-90, 90, s.ANG_STEP)
        ipds_hot = np.zeros((s.NUMBER_CLASSES, s.NUMBER_CLASSES))
        for idx in range(s.NUMBER_CLASSES):
            ipds_hot[idx, idx] = 1
        ipds_rad = ipds_ang*np.pi/180
        num_classes = len(ipds_ang)
        time_axis = np.arange(s.DURATION_STEPS) * s.DT  # array of times
        phi = 2*np.pi*(s.F * time_axis + np.random.rand())
        phi = 2 * np.pi * (s.F * time_axis + np.random.rand())
        theta = np.zeros((num_classes, s.NUM_EAR, s.DURATION_STEPS))
        zeros_pad = np.zeros((num_classes, s.NUM_EAR, s.MAX_DELAY_DURATION))
        theta[:, 0, :] = phi[np.newaxis, np.newaxis, :]
        theta[:, 1, :] = phi[np.newaxis, np.newaxis, :] + ipds_rad[np.newaxis, :, np.newaxis]
        spikes_out = np.random.rand(num_classes, s.NUM_EAR, s.DURATION_STEPS) < s.RATE_MAX * \
            s.DT * (0.5 * (1 + np.sin(theta))) ** s.ENVELOPE_POWER
        spikes_out = np.concatenate((zeros_pad, spikes_out, zeros_pad, zeros_pad), axis=2)
        spikes_temp = np.zeros((num_classes, s.NUM_EAR, num_classes, s.EFFECTIVE_DURATION))
        spikes_one = spikes_out[:, 0, :]
        spikes_two = spikes_out[:, 1, :]
        spikes_temp[:, 0, :, :] = spikes_one
        spikes_temp[:, 1, :, :] = spikes_two
        spikes_out = spikes_temp.copy()
        spikes_out = np.swapaxes(spikes_out, 0, 2)
        return spikes_out, ipds_hot

    def generate_input_targets(self, spikes_in=0, ipds_in=0, n=None):
        n = self.NUMBER_CLASSES if n is None else n
        while True:
            choice = np.random.choice(n)
            yield spikes_in[choice], ipds_in[choice]

    def get_batch(self):
        inputs, targets = [], []
        for _ in range(self.BATCH_SIZE):
            value = next(self.generate_input_targets(spikes_in=self.spikes_out_all, ipds_in=self.ipds_hot_all))
            inputs.append(value[0])
            targets.append(value[1])
        yield torch.Tensor(np.array(inputs)), torch.Tensor(np.array(targets))

    def snn_sl(self, input_spikes):
        s = self
        delay_layer = s.delay_layer
        input_spikes = delay_layer(input_spikes)
        duration_in = delay_layer.effective_duration
        v = torch.zeros((s.BATCH_SIZE, s.NUMBER_INPUTS, s.NUMBER_CLASSES, delay_layer.effective_duration), dtype=dtype)
        input_spikes_add = torch.sum(input_spikes, dim=1)  # noqa: F841 (computed and unused in the seed)
        alpha = np.exp(-1 / s.TAU)
        for t in range(duration_in - 1):
            v[:, :, :, t] = alpha * v[:, :, :, t-1] + input_spikes[:, :, :, t]
        first_mat = v[:, 1:, :, :]
        v_mul = torch.mul(first_mat, v[:, 0:1, :, :])
        v_out = v_mul
        v_out = torch.sum(v_out, dim=1)
        v_out = torch.sum(v_out, dim=2)
        return v_out

    def train_step(self, x_local, y_local):
        """The body of the seed's `for x_local, y_local in get_batch():` loop plus its per-epoch TAU decay."""
        s = self
        BATCH_SIZE, NUMBER_CLASSES, MAX_SUM = s.BATCH_SIZE, s.NUMBER_CLASSES, s.MAX_SUM
        output = s.snn_sl(x_local)
        max_sum = torch.amax(output, dim=1).detach()
        target = []
        for i in range(BATCH_SIZE):
            target.append(np.where(y_local[i] > 0.5))
        target = torch.FloatTensor(np.array(target)).squeeze().to(torch.int64)
        sum_counter = np.zeros((NUMBER_CLASSES,))  # noqa: F841 (only used by ALL_RANDOM == 2)
        for j in range(BATCH_SIZE):
            index = target[j].item()
            if s.TAU_DECAY_FLAG:
                MAX_SUM[index] = max_sum[j]
            else:
                if MAX_SUM[index] < max_sum[j]:
                    MAX_SUM[index] = max_sum[j]
        loss = 0
        for j in range(BATCH_SIZE):
            index = target[j].item()
            loss_single = (output[j, index] - MAX_SUM[index]) ** 2 / BATCH_SIZE
            loss += loss_single
        loss_value = loss.item()
        s.optimizer_delay_apply.zero_grad()
        loss.backward()
        s.optimizer_delay_apply.step()
        if s.TAU_DECAY_FLAG:
            if s.TAU >= 2:
                s.TAU *= np.exp(-s.TAU_DECAY)
            else:
                s.TAU = 2
        return loss_value

    def delays(self):
        """The learned delays (advances, seed convention), parameter values."""
        return self.delay_layer.delays_out.detach().reshape(-1).clone()


# ------------------------------------------------------------------------------------------------------------
# OURS: the same step with torch_models.delays.
# ------------------------------------------------------------------------------------------------------------
class Ours:
    """One training step of the seed's problem with exponential_filter + lagged_products (shift's delayed trace,
    summed against the fixed ear) + a vectorized max-sum loss.

    The seed advances the second ear by d in [-M, M] (output[t] = input[t + d], M = MAX_DELAY) and keeps the
    first ear as is; ours delays (y[s] = x[s - d'], d' in [0, max_steps]). With max_steps = 2M:
      'delay'   the first ear delayed by M, the second by d' = M - d: y0[s] = x0[s - M], y1[s] = x1[s - M + d],
                so ours' step s = t + M is the seed's step t (M zeros appended so that nothing falls off the end).
      'advance' shift applied to time-reversed trains turns its delays into advances: the first ear advanced by M,
                the second by d' = M + d, on trains with M zeros in front; ours' step s is the seed's step t.
    Forward passes agree: the seed's floor/ceil weights are (1, 0) up to float32 rounding at its rounded delays,
    and both pad with zeros (the seed's negative indices wrap around into its right zero padding or the 2M zero
    steps its trains end with). Backward passes do not, for 'delay': the seed's straight-through slope is the
    one of its interpolation between floor and ceil of t + d, x[t + d + 1] - x[t + d] (towards more advance);
    shift's slope is x[s - n - 1] - x[s - n] (towards more delay), which is x[t + d] - x[t + d - 1] in the
    seed's terms after the sign of d' = M - d: the other one-sided difference. Time reversal makes shift's
    slope the seed's, so 'advance' reproduces the seed's gradients and updates, 'delay' only its first loss.

    Filter first, then shift (the same model): the exponential trace is linear and time-invariant, so the trace
    of a shifted train is the shifted trace, and the straight-through slope of a shifted trace is the trace of
    the shifted slope. The seed filters 72 trains per sample (its batch repeats both ears' trains for every
    class: ear 0 unshifted, ear 1 shifted by each class's delay); ours filters the 2 trains once and shifts the
    second ear's trace per class. Exact as long as no spike crosses an end of what is filtered: delays bring in
    zeros before the start, whose trace is zero; advances read up to M steps past the end of the seed's trains,
    where shift's zeros would cut the decaying trace, hence M more zero steps filtered at the end; and the
    seed's window leaves out the first d steps of an advanced train, whose trace would decay into it, but they
    hold no spikes: the seed's trains start with MAX_DELAY empty steps. `compare_losses` checks both properties
    of its batches (equal copies, empty start).

    Integration window: the seed's loop `for t in range(duration - 1)` never writes v[..., duration - 1] (it
    stays 0, so the last step adds nothing to the sums), and its read of v[..., t - 1] at t = 0 is v[..., -1],
    that same unwritten slot, i.e. 0: no wrap-around in effect. Ours sums the products over exactly the seed's
    written steps t = 0 .. duration - 2 of traces started from a zero state, which is what the seed starts from
    (the product of the two ears' traces at the seed's last step would otherwise add alpha^k-decayed tails,
    deliberately left out, to compute the seed's numbers).

    Other differences, which do not show here: the seed's DelayUpdate clamps to [-M, M] in the forward pass and
    passes the gradient through unchanged, shift clamps to [0, 2M] with gradient 0 outside; the seed rounds
    half to even (torch.round), shift rounds half up (floor(d + 1/2)).
    """

    def __init__(self, seed_delays, max_delay, convention="delay", lr=0.5, tau=40.0):
        self.M, self.convention, self.TAU = int(max_delay), convention, tau
        seed_delays = torch.as_tensor(seed_delays, dtype=dtype).reshape(-1)
        learned = self.M - seed_delays if convention == "delay" else self.M + seed_delays
        self.steps = nn.Parameter(learned.clone())
        self.optimizer = torch.optim.SGD([self.steps], lr=lr)

    def delays(self):
        """The learned delays in the seed's convention (advances)."""
        d = self.steps.detach()
        return (self.M - d if self.convention == "delay" else d - self.M).clone()

    def train_step(self, spikes, targets):
        """spikes (batch, 2 ears, classes, duration) and one-hot targets (batch, classes): the seed's batch."""
        batch, ears, classes, duration = spikes.shape
        M, window = self.M, duration - 1  # the seed's integrated steps t = 0 .. duration - 2
        # the two trains of each sample (the batch holds a copy per class), time first: the filter is then one
        # (time x time) @ (time x 2 batch) matmul
        trains = spikes[:, :, 0].permute(2, 0, 1)[None]  # (1, duration, batch, ears)
        alpha = float(np.exp(-1 / self.TAU))
        if self.convention == "delay":  # ours' step s = t + M
            traces = exponential_filter(F.pad(trains, (0, 0, 0, 0, 0, M)), alpha)[0]  # (duration + M, batch, ears)
            learned = traces[:, :, 1].T
            fixed = F.pad(traces[:window, :, 0], (0, 0, M, 1)).T  # ear 0 delayed by M, 0 outside the window
        else:  # reversed time r = duration + 2M - 1 - t: the window is its last `window` steps
            traces = exponential_filter(F.pad(trains, (0, 0, 0, 0, M, M)), alpha)[0]  # (duration + 2M, batch, ears)
            learned = traces[:, :, 1].T.flip(1)
            fixed = F.pad(traces[M:M + window, :, 0], (0, 0, 0, 2 * M + 1)).T.flip(1)  # ear 0 advanced by M
        # (batch, classes): sums over the window of ear 0's trace times ear 1's trace shifted by each class's delay
        output = lagged_products(fixed, learned, self.steps, 2 * M)
        # max-sum loss: the seed's MAX_SUM[c] is the batch maximum of the last sample of class c in the batch
        target = targets.argmax(1)
        max_sum = output.detach().amax(1)
        last = torch.full((classes,), -1, dtype=torch.long).scatter_reduce(0, target, torch.arange(batch), "amax")
        reference = max_sum[last[target]]
        loss = ((output.gather(1, target[:, None])[:, 0] - reference) ** 2 / batch).sum()
        loss_value = loss.item()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.TAU = self.TAU * np.exp(-0.01) if self.TAU >= 2 else 2
        return loss_value


# ------------------------------------------------------------------------------------------------------------
def timed(step, *args):
    start = time.perf_counter()
    value = step(*args)
    return time.perf_counter() - start, value


def in_force(delays, max_delay):
    """Whole-step delays the next forward pass applies (ties, which do not occur here, aside)."""
    return torch.round(delays.clamp(-max_delay, max_delay))


def filter_first_is_exact(spikes, max_delay):
    """The properties of a seed's batch under which Ours filters 2 trains instead of 72 (see `Ours`): every
    class copy of each ear's train equal, and no spike in the first MAX_DELAY steps."""
    return bool(torch.equal(spikes, spikes[:, :, :1].expand_as(spikes)) and not spikes[..., :max_delay].any())


def compare_losses(seed, steps):
    reference = Seed003(seed)
    initial = reference.delays()
    ours = {c: Ours(initial, reference.MAX_DELAY, c) for c in ("delay", "advance")}
    rows = []
    for k in range(steps):
        x, y = next(reference.get_batch())
        row = {"step": k + 1, "filter_first_exact": filter_first_is_exact(x, reference.MAX_DELAY),
               "seed": reference.train_step(x, y)}
        for c, model in ours.items():
            row[c] = model.train_step(x, y)
            row[f"{c}_max_delay_difference"] = float((model.delays() - reference.delays()).abs().max())
            row[f"{c}_same_delays_in_force"] = bool(torch.equal(in_force(model.delays(), reference.MAX_DELAY),
                                                                in_force(reference.delays(), reference.MAX_DELAY)))
        rows.append(row)
    return initial, rows


def time_steps(seed, repeats, max_delay=20, names=("seed", "ours_advance", "ours_delay")):
    """Median seconds per training step, the implementations run alternately (order reversed every other
    round) on the same batches; the first round is a warm-up."""
    reference = Seed003(seed, max_delay)
    make = {"seed": lambda: reference,
            "ours_delay": lambda: Ours(reference.delays(), max_delay, "delay"),
            "ours_advance": lambda: Ours(reference.delays(), max_delay, "advance")}
    contenders = {name: make[name]() for name in names}
    times = {name: [] for name in names}
    for r in range(repeats + 1):
        x, y = next(reference.get_batch())
        for name in (names if r % 2 else names[::-1]):
            seconds, _ = timed(contenders[name].train_step, x, y)
            if r:
                times[name].append(seconds)
    return {name: statistics.median(t) for name, t in times.items()}, reference.EFFECTIVE_DURATION


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed training steps per implementation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=6, help="consecutive steps whose losses are compared")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on 2 cores shared with other jobs, 2 threads made every "
                             "step of both implementations many times slower, the seed's up to 7 s)")
    parser.add_argument("--out", default=os.path.join("bench", "results", "delay_layer.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    initial, rows = compare_losses(args.seed, args.steps)
    print(f"initial delays (seed convention): {initial.int().tolist()}")
    same = None
    if args.seed == 0:
        same = all(abs(row["seed"] - printed) < 1e-5 * printed for row, printed in zip(rows, NOTEBOOK_LOSSES))
        print(f"seed's losses = the notebook's printed epoch losses {NOTEBOOK_LOSSES[:len(rows)]}: "
              f"{'yes' if same else 'NO'}")
    print(f"batches with equal class copies and empty first MAX_DELAY steps (ours' filter-then-shift exact): "
          f"{'yes' if all(row['filter_first_exact'] for row in rows) else 'NO'}")
    print(f"{'step':>4} {'loss seed':>14} {'ours advance':>14} {'rel diff':>9} {'ours delay':>14} {'rel diff':>9}"
          f"  max |delay diff| (same delays in force) advance / delay")
    for row in rows:
        rel = {c: abs(row[c] - row["seed"]) / abs(row["seed"]) for c in ("advance", "delay")}
        row.update({f"{c}_relative_difference": v for c, v in rel.items()})
        print(f"{row['step']:4d} {row['seed']:14.6f} {row['advance']:14.6f} {rel['advance']:9.1e} "
              f"{row['delay']:14.6f} {rel['delay']:9.1e}  {row['advance_max_delay_difference']:.2g} "
              f"({'yes' if row['advance_same_delays_in_force'] else 'no'}) / {row['delay_max_delay_difference']:.2g} "
              f"({'yes' if row['delay_same_delays_in_force'] else 'no'})")

    medians, _ = time_steps(args.seed, args.repeats)
    print(f"\nmedian time per training step (forward + loss + backward + SGD step), {args.repeats} steps each, "
          f"interleaved; batch 200 x 2 ears x 36 classes x 110 steps; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs")
    print(f"{'implementation':>14} {'ms/step':>9} {'speed-up':>8}")
    for name in ("seed", "ours_advance", "ours_delay"):
        print(f"{name:>14} {medians[name] * 1e3:9.2f} {medians['seed'] / medians[name]:7.1f}x")

    series_repeats = max(3, args.repeats // 3)
    series = []
    print(f"\nas the maximum delay grows: ours (max_steps = 2 * MAX_DELAY) and the seed's code, MAX_DELAY = "
          f"max_steps / 2, time axis 3 * MAX_DELAY + 50 (the seed's), {series_repeats} steps each, interleaved")
    print(f"{'max_steps':>9} {'time axis':>9} {'advance ms':>10} {'growth':>7} {'delay ms':>9} {'growth':>7} "
          f"{'seed ms':>9} {'growth':>7} {'speed-up':>8}")
    for max_steps in (20, 40, 80, 320):
        m, duration = time_steps(args.seed, series_repeats, max_steps // 2)
        series.append({"max_steps": max_steps, "time_steps": duration, "ours_advance_s": m["ours_advance"],
                       "ours_delay_s": m["ours_delay"], "seed_s": m["seed"]})
        growth = {name: m[name] / series[0][f"{name}_s"] for name in ("ours_advance", "ours_delay", "seed")}
        print(f"{max_steps:9d} {duration:9d} {m['ours_advance'] * 1e3:10.2f} {growth['ours_advance']:6.1f}x "
              f"{m['ours_delay'] * 1e3:9.2f} {growth['ours_delay']:6.1f}x {m['seed'] * 1e3:9.1f} "
              f"{growth['seed']:6.1f}x {m['seed'] / m['ours_advance']:7.1f}x")

    result = {"date": datetime.date.today().isoformat(), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "cpus": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
              "seed": args.seed, "repeats": args.repeats, "initial_delays": initial.tolist(), "losses": rows,
              "seed_losses_equal_notebook": same,
              "median_step_s": medians,
              "speed_up": {name: medians["seed"] / medians[name] for name in ("ours_advance", "ours_delay")},
              "series": series, "series_repeats": series_repeats}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
