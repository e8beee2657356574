"""Synthetic long-range tasks with exact generators and their chance baselines.

Every generator is a pure function of a PRNG key (the same key gives the same batch) and returns
batch-major arrays: inputs ``[b, t, d]`` float32 and targets.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from seqjax import _checks


def adding_problem(key: jax.Array, batch: int, length: int) -> tuple[jax.Array, jax.Array]:
    """The adding problem (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015).

    Each step carries two features: a value ``u_t ~ U(0, 1)`` and a marker in ``{0, 1}``. Exactly
    two steps are marked, one uniformly in the first half and one in the second half; the target
    is the sum of the two marked values. Predicting the constant 1 (the mean of the target) gives
    MSE ``Var(u_a + u_b) = 2 / 12 = 1/6 ~ 0.167`` (:func:`adding_baseline_mse`).

    Returns ``xs`` ``[b, length, 2]`` and ``ys`` ``[b]``.
    """
    _checks.positive_int("batch", batch)
    if not isinstance(length, int) or length < 2:
        raise ValueError(f"length must be an integer >= 2 (one marker per half); got {length!r}.")
    k_values, k_first, k_second = jax.random.split(key, 3)
    half = length // 2
    values = jax.random.uniform(k_values, (batch, length))
    first = jax.random.randint(k_first, (batch,), 0, half)
    second = jax.random.randint(k_second, (batch,), half, length)
    steps = jnp.arange(length)
    markers = (steps == first[:, None]) | (steps == second[:, None])
    xs = jnp.stack([values, markers.astype(jnp.float32)], axis=-1)
    ys = jnp.sum(values * markers, axis=1)
    return xs, ys


def adding_baseline_mse() -> float:
    """MSE of always predicting 1 on the adding problem: the variance of a sum of two U(0, 1)."""
    return 2.0 / 12.0


COPY_SYMBOLS = 8  # data symbols 1..8; 0 is blank, 9 the delimiter (Arjovsky et al. 2016)
COPY_VOCAB = COPY_SYMBOLS + 2


def copy_memory(
    key: jax.Array, batch: int, lag: int, *, num_symbols: int = 10
) -> tuple[jax.Array, jax.Array]:
    """The copy-memory task (Arjovsky et al. 2016) as token ids.

    Input (length ``lag + 2 * num_symbols``): ``num_symbols`` symbols drawn uniformly from
    ``1..8``, then ``lag - 1`` blanks (0), a delimiter (9) and ``num_symbols`` blanks. Target: blanks
    everywhere except the last ``num_symbols`` steps, which must reproduce the first ones. A
    memoryless model that predicts blanks and then a uniform guess over the 8 symbols scores
    ``num_symbols * log(8) / (lag + 2 * num_symbols)`` nats per step (:func:`copy_baseline`).

    Returns ``tokens`` ``[b, t]`` and ``targets`` ``[b, t]``, both int32 in ``[0, 10)``; use
    ``jax.nn.one_hot(tokens, COPY_VOCAB)`` as inputs.
    """
    _checks.positive_int("batch", batch)
    _checks.positive_int("lag", lag)
    _checks.positive_int("num_symbols", num_symbols)
    symbols = jax.random.randint(key, (batch, num_symbols), 1, COPY_SYMBOLS + 1)
    blanks = jnp.zeros((batch, lag - 1), jnp.int32)
    delimiter = jnp.full((batch, 1), COPY_SYMBOLS + 1, jnp.int32)
    tail = jnp.zeros((batch, num_symbols), jnp.int32)
    tokens = jnp.concatenate([symbols, blanks, delimiter, tail], axis=1)
    targets = jnp.concatenate(
        [jnp.zeros((batch, lag + num_symbols), jnp.int32), symbols], axis=1
    )
    return tokens, targets


def copy_baseline(lag: int, num_symbols: int = 10) -> float:
    """Cross-entropy (nats per step) of the memoryless copy-task strategy described above."""
    return num_symbols * math.log(COPY_SYMBOLS) / (lag + 2 * num_symbols)


def sequence_reversal(
    key: jax.Array, batch: int, length: int, vocab_size: int = 10
) -> tuple[jax.Array, jax.Array]:
    """Tokens ``[b, t]`` drawn uniformly from ``0..vocab_size-1`` and their reversal as targets.

    The per-step chance cross-entropy is ``log(vocab_size)``.
    """
    _checks.positive_int("batch", batch)
    _checks.positive_int("length", length)
    _checks.positive_int("vocab_size", vocab_size)
    tokens = jax.random.randint(key, (batch, length), 0, vocab_size)
    return tokens, tokens[:, ::-1]


def ends_with_pattern(
    key: jax.Array, batch: int, length: int, *, vocab_size: int = 5, pattern=(1, 2, 3)
) -> tuple[jax.Array, jax.Array]:
    """The "does the sequence end with [1, 2, 3]?" task (the textbook chapter's first RNN example), with balanced classes.

    The textbook draws tokens iid, so only 1 in 125 sequences is positive and an all-negative classifier
    scores 99.2%. Here exactly half the batch (rounded down) is positive: its last tokens are set to
    ``pattern``; in the other half the last token is redrawn, where needed, so that the sequence
    does *not* end with the pattern. Chance accuracy is 0.5. Returns tokens ``[b, t]`` int32 and
    labels ``[b]`` int32 in a random order.
    """
    _checks.positive_int("batch", batch)
    pattern = jnp.asarray(pattern, jnp.int32)
    if length < pattern.shape[0]:
        raise ValueError(f"length must be >= len(pattern) = {pattern.shape[0]}; got {length}.")
    if vocab_size < 2 or int(pattern.max()) >= vocab_size or int(pattern.min()) < 0:
        raise ValueError(f"pattern tokens must lie in [0, vocab_size={vocab_size}); got {pattern.tolist()}.")
    k_tokens, k_fix, k_order = jax.random.split(key, 3)
    tokens = jax.random.randint(k_tokens, (batch, length), 0, vocab_size)
    labels = (jnp.arange(batch) < batch // 2).astype(jnp.int32)
    n = pattern.shape[0]
    tail = jnp.where(labels[:, None] == 1, pattern, tokens[:, -n:])
    # A negative that matches by chance gets a different last token (shifted by 1..vocab-1).
    matches = jnp.all(tail == pattern, axis=1) & (labels == 0)
    shift = jax.random.randint(k_fix, (batch,), 1, vocab_size)
    last = jnp.where(matches, (tail[:, -1] + shift) % vocab_size, tail[:, -1])
    tokens = tokens.at[:, -n:].set(tail).at[:, -1].set(last)
    order = jax.random.permutation(k_order, batch)
    return tokens[order], labels[order]


def noisy_sines(
    key: jax.Array,
    batch: int,
    length: int,
    *,
    frequencies=(0.1, 0.05),
    amplitudes=(0.8, 0.2),
    noise: float = 0.2,
) -> tuple[jax.Array, jax.Array]:
    """Windows of a multi-tone sine with Gaussian noise, and the next value to forecast.

    ``s_t = sum_k A_k sin(w_k t + phi_k) + noise * N(0, 1)`` with a random phase ``phi_k`` per
    window and tone (the textbook chapter's LSTM exercise uses ``0.8 sin(0.1 t) + 0.2 sin(0.05 t) + 0.2 N(0, 1)``).
    Returns ``xs`` ``[b, length, 1]`` (steps ``0..length-1``) and ``ys`` ``[b]`` (step ``length``).
    The noise alone makes ``noise**2`` the lowest reachable MSE.
    """
    _checks.positive_int("batch", batch)
    _checks.positive_int("length", length)
    if len(frequencies) != len(amplitudes):
        raise ValueError(
            f"frequencies and amplitudes must have the same length; got {len(frequencies)} and "
            f"{len(amplitudes)}."
        )
    k_phase, k_noise = jax.random.split(key)
    freqs = jnp.asarray(frequencies, jnp.float32)
    amps = jnp.asarray(amplitudes, jnp.float32)
    phases = jax.random.uniform(k_phase, (batch, 1, freqs.shape[0]), maxval=2 * math.pi)
    t = jnp.arange(length + 1, dtype=jnp.float32)[None, :, None]
    clean = jnp.sum(amps * jnp.sin(freqs * t + phases), axis=-1)
    series = clean + noise * jax.random.normal(k_noise, clean.shape)
    return series[:, :length, None], series[:, length]


def delayed_match_to_sample(
    key: jax.Array, batch: int, length: int, features: int = 8
) -> tuple[jax.Array, jax.Array]:
    """Delayed match-to-sample (the working-memory task of the textbook chapter's neuroscience
    section), with labels to learn.

    Step 0 is the sample ``~ U(0, 1)^features``, steps ``1..length-2`` are distractors from the
    same distribution, and the last step is the probe: the sample itself (match, label 1) with
    probability 1/2, otherwise a fresh draw (label 0). Chance accuracy is 0.5. Returns ``xs``
    ``[b, length, features]`` and ``labels`` ``[b]`` int32.
    """
    _checks.positive_int("batch", batch)
    _checks.positive_int("features", features)
    if length < 2:
        raise ValueError(f"length must be >= 2 (sample and probe); got {length}.")
    k_xs, k_match = jax.random.split(key)
    xs = jax.random.uniform(k_xs, (batch, length, features))
    labels = jax.random.bernoulli(k_match, 0.5, (batch,)).astype(jnp.int32)
    probe = jnp.where(labels[:, None] == 1, xs[:, 0], xs[:, -1])
    return xs.at[:, -1].set(probe), labels


def random_sines(
    key: jax.Array,
    batch: int,
    length: int,
    *,
    dt: float = 10.0 / 44.0,
    amplitude: tuple[float, float] = (0.5, 1.5),
    frequency: tuple[float, float] = (0.1, 0.5),
    noise: float = 0.05,
) -> tuple[jax.Array, jax.Array]:
    """Sines of random amplitude, frequency and phase, sampled every ``dt``, clean and noisy.

    ``s_i = A sin(w i dt + phi)`` with ``A ~ U(amplitude)``, ``w ~ U(frequency)`` (radians per
    time unit) and ``phi ~ U(0, 2 pi)`` per sequence; ``x_i = s_i + noise * N(0, 1)``. The
    defaults are the textbook chapter's transformer exercise (``t = linspace(0, 10, 45)``, so
    ``dt = 10 / 44``). Returns ``(clean, noisy)``, each ``[b, length]`` float32.

    >>> import jax
    >>> clean, noisy = random_sines(jax.random.key(0), 2, 45)
    >>> clean.shape, bool(abs(noisy - clean).max() < 0.5)
    ((2, 45), True)
    """
    _checks.positive_int("batch", batch)
    _checks.positive_int("length", length)
    for name, (lo, hi) in (("amplitude", amplitude), ("frequency", frequency)):
        if not 0 <= lo <= hi:
            raise ValueError(f"{name} must be (low, high) with 0 <= low <= high; got {(lo, hi)}.")
    if not (dt > 0 and noise >= 0):
        raise ValueError(f"dt must be positive and noise non-negative; got dt={dt}, noise={noise}.")
    k_a, k_w, k_phi, k_noise = jax.random.split(key, 4)
    amp = jax.random.uniform(k_a, (batch, 1), minval=amplitude[0], maxval=amplitude[1])
    omega = jax.random.uniform(k_w, (batch, 1), minval=frequency[0], maxval=frequency[1])
    phase = jax.random.uniform(k_phi, (batch, 1), maxval=2 * math.pi)
    t = jnp.arange(length, dtype=jnp.float32)[None, :] * dt
    clean = amp * jnp.sin(omega * t + phase)
    return clean, clean + noise * jax.random.normal(k_noise, clean.shape)


def neighbour_comparison_tagging(
    key: jax.Array, batch: int, length: int, *, vocab_size: int = 4
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """A tagging task that needs the right context: the tag of step ``t`` is 1 if
    ``x_{t+1} > x_{t-1}``, else 0.

    Tokens are iid uniform over ``vocab_size``. A model that reads left to right knows ``x_{t-1}``
    but not ``x_{t+1}``, which is independent of everything before it: its best accuracy is
    :func:`left_to_right_ceiling` (0.75 for 4 tokens), while a bidirectional model can reach 1.
    The first and last steps have no tag. Returns ``tokens`` ``[b, t]`` int32, ``tags``
    ``[b, t]`` int32 (0 at the untagged ends) and ``mask`` ``[b, t]`` bool (True where tagged).

    >>> import jax
    >>> tokens, tags, mask = neighbour_comparison_tagging(jax.random.key(0), 1, 5)
    >>> bool(tags[0, 2] == (tokens[0, 3] > tokens[0, 1])), mask[0].tolist()
    (True, [False, True, True, True, False])
    """
    _checks.positive_int("batch", batch)
    if not isinstance(length, int) or length < 3:
        raise ValueError(f"length must be an integer >= 3 (a step with both neighbours); got {length!r}.")
    if not isinstance(vocab_size, int) or vocab_size < 2:
        raise ValueError(f"vocab_size must be an integer >= 2; got {vocab_size!r}.")
    tokens = jax.random.randint(key, (batch, length), 0, vocab_size)
    inner = (tokens[:, 2:] > tokens[:, :-2]).astype(jnp.int32)
    zero = jnp.zeros((batch, 1), jnp.int32)
    tags = jnp.concatenate([zero, inner, zero], axis=1)
    mask = jnp.broadcast_to((jnp.arange(length) > 0) & (jnp.arange(length) < length - 1), (batch, length))
    return tokens, tags, mask


def left_to_right_ceiling(vocab_size: int) -> float:
    """The best accuracy on :func:`neighbour_comparison_tagging` knowing only ``x_{t-1} = a``:
    guess the likelier of ``x_{t+1} > a`` (probability ``(V - 1 - a) / V``) and its opposite,
    averaged over ``a``. The majority class alone scores ``1 - (V - 1) / (2 V)``.

    >>> left_to_right_ceiling(4)
    0.75
    """
    v = vocab_size
    return sum(max(v - 1 - a, a + 1) for a in range(v)) / (v * v)
