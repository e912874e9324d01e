"""``kws``: keyword spotting with MLPerf Tiny's DS-CNN, on a synthetic MFCC task.

Why synthetic: no keyword audio (Speech Commands) is available offline. The
task imitates what a DS-CNN sees on real MFCCs: 49 frames x 10 coefficients,
a spoken "word" that is a sequence of phoneme-like spectral states somewhere in
the 1 s window, with speaker, loudness, speed and noise variation. It is built
to be confusable on purpose, not trivially separable:

- the 10 keywords are drawn from one shared inventory of 12 phoneme states and
  come in near pairs (same phonemes with one changed, or swapped order);
- class 0 ("silence") is background noise, sometimes with a click or rustle;
- class 1 ("unknown") is other phoneme sequences, a third of them one
  substitution away from a keyword;
- the noise floor, the speaker offset and the coarticulation smear blur the
  phoneme states into each other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebench.suite.build.blocks import classifier_head, conv_bn, depthwise_separable
from edgebench.suite.build.spec import Benchmark, Split
from edgebench.suite.build.training import cosine_schedule, fit, log

FRAMES = 49
COEFS = 10
CLASSES = 12
TRAIN_PER_CLASS = 500
EVAL_PER_CLASS = 100
EPOCHS = 15
BATCH = 64

#: Typical spread of each cepstral coefficient (c0 = log energy is widest).
COEF_SCALE = np.array([3.0, 2.2, 1.8, 1.5, 1.3, 1.1, 1.0, 0.9, 0.8, 0.7])

#: The inventory of phoneme states is fixed by this seed, independent of the
#: benchmark seed, so "the task" is the same whatever seed draws the samples.
INVENTORY_SEED = 4242
PHONEMES = 12

#: Keyword phoneme sequences (classes 2..11); note the near pairs.
KEYWORDS: tuple[tuple[int, ...], ...] = (
    (0, 1, 2),
    (0, 1, 3),
    (4, 1, 2),
    (5, 6, 7),
    (5, 7, 6),
    (8, 9),
    (9, 8),
    (10, 2, 11),
    (3, 4, 5, 6),
    (11, 10, 1),
)

# Difficulty knobs (tuned for a fp32 DS-CNN accuracy of roughly 90 %).
SPEAKER_SD = 0.6
FRAME_SD = 0.8
NOISE_SD = 0.8
SPEECH_C0 = 4.0
NOISE_C0_RANGE = (-5.0, 2.5)


def phoneme_inventory() -> np.ndarray:
    """The fixed [PHONEMES, COEFS] phoneme states (c0 excluded: loudness is per word)."""
    rng = np.random.default_rng(INVENTORY_SEED)
    states = rng.normal(0.0, 1.0, (PHONEMES, COEFS)) * COEF_SCALE
    states[:, 0] = rng.normal(0.0, 1.0, PHONEMES)
    return states


def _smooth(track: np.ndarray, width: int) -> np.ndarray:
    """Triangular smoothing along time (coarticulation between phoneme states)."""
    if width <= 1:
        return track
    kernel = np.bartlett(width + 2)[1:-1]
    kernel /= kernel.sum()
    padded = np.pad(track, ((width, width), (0, 0)), mode="edge")
    out = np.stack([np.convolve(padded[:, c], kernel, mode="same") for c in range(COEFS)], 1)
    return out[width:-width]


def _background(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A noise-floor clip and its mean log energy."""
    level = rng.uniform(*NOISE_C0_RANGE)
    colour = rng.normal(0.0, 0.5, COEFS) * COEF_SCALE
    colour[0] = level
    frames = colour + rng.normal(0.0, NOISE_SD, (FRAMES, COEFS)) * COEF_SCALE
    return frames, level


def _word(sequence: tuple[int, ...], states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render one utterance of a phoneme sequence into a [FRAMES, COEFS] clip with noise."""
    clip, noise_level = _background(rng)
    length = int(rng.integers(16, 33))
    weights = rng.uniform(0.7, 1.3, len(sequence))
    bounds = np.round(np.cumsum(np.concatenate([[0.0], weights])) / weights.sum() * length)
    speaker = rng.normal(0.0, SPEAKER_SD, COEFS) * COEF_SCALE
    gain = SPEECH_C0 + rng.uniform(-3.0, 3.0)
    track = np.empty((length, COEFS))
    for k, phoneme in enumerate(sequence):
        track[int(bounds[k]) : int(bounds[k + 1])] = states[phoneme] + speaker
    track[:, 0] += gain
    # Ramps in and out of the word, then the coarticulation smear.
    envelope = np.minimum(1.0, np.minimum(np.arange(1, length + 1), np.arange(length, 0, -1)) / 3)
    track[:, 0] = noise_level + (track[:, 0] - noise_level) * envelope
    track = _smooth(track, int(rng.integers(2, 6)))
    track += rng.normal(0.0, FRAME_SD, track.shape) * COEF_SCALE
    onset = int(rng.integers(0, FRAMES - length + 1))
    segment = clip[onset : onset + length]
    # Speech dominates the noise where it is louder (a soft max in the log domain).
    w = 1.0 / (1.0 + np.exp(-(track[:, :1] - segment[:, :1])))
    clip[onset : onset + length] = w * track + (1.0 - w) * segment
    return clip


def _silence(rng: np.random.Generator) -> np.ndarray:
    """Background only; 40 % of clips get a short broadband click or rustle."""
    clip, level = _background(rng)
    if rng.random() < 0.4:
        length = int(rng.integers(2, 7))
        onset = int(rng.integers(0, FRAMES - length + 1))
        burst = rng.normal(0.0, 1.0, (length, COEFS)) * COEF_SCALE * 0.8
        burst[:, 0] = level + rng.uniform(2.0, 7.0)
        clip[onset : onset + length] = burst
    return clip


def _unknown_sequence(rng: np.random.Generator) -> tuple[int, ...]:
    """A phoneme sequence that is not a keyword; a third are one substitution away."""
    while True:
        if rng.random() < 1 / 3:
            base = list(KEYWORDS[int(rng.integers(len(KEYWORDS)))])
            base[int(rng.integers(len(base)))] = int(rng.integers(PHONEMES))
            seq = tuple(base)
        else:
            seq = tuple(int(p) for p in rng.integers(0, PHONEMES, int(rng.integers(2, 5))))
        if seq not in KEYWORDS:
            return seq


def sample(label: int, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One [FRAMES, COEFS] clip of class ``label`` (0 silence, 1 unknown, 2.. keywords)."""
    if label == 0:
        return _silence(rng)
    if label == 1:
        return _word(_unknown_sequence(rng), states, rng)
    return _word(KEYWORDS[label - 2], states, rng)


def generate(per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A shuffled, class-balanced set as float32 [N, 49, 10, 1] and int64 labels."""
    states = phoneme_inventory()
    labels = rng.permutation(np.repeat(np.arange(CLASSES), per_class))
    x = np.stack([sample(int(c), states, rng) for c in labels]).astype(np.float32)
    return x[..., None], labels.astype(np.int64)


def make_data(seed: int) -> Split:
    """Independent generator streams for training and eval clips."""
    x_train, y_train = generate(TRAIN_PER_CLASS, np.random.default_rng([seed, 1]))
    x_eval, y_eval = generate(EVAL_PER_CLASS, np.random.default_rng([seed, 2]))
    return Split(x_train, y_train, x_eval, y_eval)


def build_model(keras: Any, batch_size: int | None) -> Any:
    """DS-CNN as in MLPerf Tiny kws01: conv 10x4/2 (64), 4 depthwise-separable blocks."""
    layers = keras.layers
    inputs = keras.Input((FRAMES, COEFS, 1), batch_size=batch_size, name="input")
    x = conv_bn(keras, inputs, 64, (10, 4), 2, "stem")
    x = layers.Dropout(0.2, name="stem_dropout")(x)
    for i in range(1, 5):
        x = depthwise_separable(keras, x, 64, 1, f"block{i}")
    x = layers.Dropout(0.4, name="features_dropout")(x)
    outputs = classifier_head(keras, x, CLASSES)
    return keras.Model(inputs, outputs, name="kws_dscnn")


def train(keras: Any, model: Any, split: Split, seed: int) -> None:
    """Adam with cosine decay on the class-balanced synthetic clips."""
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    log("kws", f"training {EPOCHS} epochs on {len(split.x_train)} samples")
    fit(
        keras,
        "kws",
        model,
        split.x_train,
        split.y_train,
        epochs=EPOCHS,
        batch_size=BATCH,
        every=5,
        extra_callbacks=[cosine_schedule(keras, 3e-3, EPOCHS)],
    )


BENCHMARK = Benchmark(
    name="kws",
    task="keyword spotting (synthetic MFCC task, 12 classes)",
    topology="DS-CNN (MLPerf Tiny kws01)",
    input_shape=(FRAMES, COEFS, 1),
    classes=CLASSES,
    metric="top1",
    seed=1001,
    synthetic=True,
    source=(
        "synthetic, generated by edgebench.suite.build.kws: 10 keywords as sequences of "
        "12 shared phoneme states, plus silence (0) and unknown (1)"
    ),
    preprocessing=(
        "clips are generated directly as 49 frames x 10 MFCC-like coefficients (float); "
        "int8 = round(value / input scale) + zero point"
    ),
    training=(
        f"{TRAIN_PER_CLASS} generated clips per class (independent stream from eval); "
        f"Adam, cosine LR 3e-3, {EPOCHS} epochs, batch {BATCH}"
    ),
    calibration_size=500,
    make_data=make_data,
    build_model=build_model,
    train=train,
)
