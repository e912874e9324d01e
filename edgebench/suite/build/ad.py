"""``ad``: anomaly detection with MLPerf Tiny's FC autoencoder, on synthetic machine sound.

Why synthetic: no machine-sound recordings (ToyADMOS / DCASE) are available
offline. The generator renders what the ad01 model sees on real data, a window
of 5 log-mel frames x 128 bands (16 kHz audio, 8 kHz bandwidth), from a simple
physical picture of a running machine:

- normal: a harmonic series on a slowly drifting rotation fundamental
  (150-260 Hz), shaped by the housing's resonance, over a pink noise floor,
  with per-clip gain and per-frame level flutter;
- anomalies (eval only), three kinds in equal numbers: extra inter-harmonics
  (a loose or unbalanced part), bearing-like broadband impulses in one or two
  frames, and a shifted housing resonance. Their strengths are drawn from
  ranges that start near zero, so some anomalies are genuinely hard to tell
  from normal operation and the AUC stays well below 1.

The autoencoder is trained on normal windows only; the anomaly score is the
mean squared reconstruction error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebench.suite.build.blocks import BN_MOMENTUM
from edgebench.suite.build.spec import Benchmark, Split
from edgebench.suite.build.training import cosine_schedule, fit, log

FRAMES = 5
MELS = 128
SAMPLE_RATE = 16000
FFT_BINS = 1024
TRAIN_NORMAL = 4000
EVAL_NORMAL = 600
EVAL_PER_ANOMALY = 200
ANOMALY_KINDS = ("inter_harmonics", "impulses", "resonance_shift")
EPOCHS = 40
BATCH = 128

#: Fixed affine map from dB to the model's float input (no data-dependent scaling).
DB_OFFSET = 15.0
DB_SCALE = 15.0

# Difficulty knobs (tuned for a fp32 AUC of roughly 0.9).
FLUTTER_DB = 1.0
INTER_HARMONIC_DB = (-26.0, -6.0)
IMPULSE_DB = (0.0, 12.0)
RESONANCE_SHIFT = (0.2, 0.55)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank() -> np.ndarray:
    """[MELS, FFT_BINS] triangular filters, equally spaced on the mel scale, 0-8 kHz."""
    freqs = np.linspace(0.0, SAMPLE_RATE / 2, FFT_BINS)
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(np.array(SAMPLE_RATE / 2)), MELS + 2))
    bank = np.zeros((MELS, FFT_BINS))
    for m in range(MELS):
        lo, centre, hi = edges[m], edges[m + 1], edges[m + 2]
        rising = (freqs - lo) / (centre - lo)
        falling = (hi - freqs) / (hi - centre)
        bank[m] = np.clip(np.minimum(rising, falling), 0.0, None)
    return bank / np.maximum(bank.sum(axis=1, keepdims=True), 1e-12)


_FREQS = np.linspace(0.0, SAMPLE_RATE / 2, FFT_BINS)
_BANK = mel_filterbank()


def _peaks(centres: np.ndarray, gains_db: np.ndarray, width_hz: float = 12.0) -> np.ndarray:
    """Power spectrum [FFT_BINS] of Gaussian lines at ``centres`` with dB gains."""
    shape = np.exp(-0.5 * ((_FREQS[None, :] - centres[:, None]) / width_hz) ** 2)
    return (10.0 ** (gains_db / 10.0)) @ shape


def _resonance_db(freqs: np.ndarray, centre: float, width_oct: float) -> np.ndarray:
    """Housing resonance gain (dB) as a Gaussian bump in log frequency."""
    return 18.0 * np.exp(-0.5 * (np.log2(np.maximum(freqs, 1.0) / centre) / width_oct) ** 2)


def window(rng: np.random.Generator, anomaly: str | None = None) -> np.ndarray:
    """One [FRAMES, MELS] log-mel window in dB; ``anomaly`` is None or one of ANOMALY_KINDS."""
    f0 = rng.uniform(150.0, 260.0)
    drift = rng.normal(0.0, 0.004)
    resonance = 1400.0 * rng.uniform(0.94, 1.06)
    res_width = rng.uniform(0.45, 0.6)
    tilt = rng.uniform(5.0, 8.0)
    gain = rng.uniform(-3.0, 3.0)
    noise_db = rng.uniform(-2.0, 6.0)
    extra_db = rng.uniform(*INTER_HARMONIC_DB)
    impulse_frames = rng.choice(FRAMES, size=int(rng.integers(1, 3)), replace=False)
    impulse_db = rng.uniform(*IMPULSE_DB)
    shift = rng.uniform(*RESONANCE_SHIFT) * rng.choice([-1.0, 1.0])
    if anomaly == "resonance_shift":
        resonance *= 2.0**shift
    pink = 10.0 ** ((noise_db - 10.0 * np.log10(np.maximum(_FREQS, 50.0) / 50.0) * 0.5) / 10.0)
    frames = np.empty((FRAMES, MELS))
    for t in range(FRAMES):
        f = f0 * (1.0 + drift * t)
        harmonics = f * np.arange(1, int((SAMPLE_RATE / 2) / f) + 1)
        levels = (
            40.0
            + gain
            - tilt * np.log2(np.arange(1, len(harmonics) + 1))
            + _resonance_db(harmonics, resonance, res_width)
        )
        power = _peaks(harmonics, levels) + pink
        if anomaly == "inter_harmonics":
            extra = harmonics[:12] * 1.5
            power += _peaks(extra, levels[:12] + extra_db)
        if anomaly == "impulses" and t in impulse_frames:
            broadband = 10.0 ** ((5.0 + gain + impulse_db) / 10.0) * (_FREQS > 2000.0)
            power += broadband
        mel_db = 10.0 * np.log10(_BANK @ power + 1e-6)
        frames[t] = mel_db + rng.normal(0.0, FLUTTER_DB) + rng.normal(0.0, 0.4, MELS)
    return frames


def to_input(frames_db: np.ndarray) -> np.ndarray:
    """Flatten [.., FRAMES, MELS] dB windows to the model's [.., 640] float input."""
    flat = frames_db.reshape(*frames_db.shape[:-2], FRAMES * MELS)
    return ((flat - DB_OFFSET) / DB_SCALE).astype(np.float32)


def make_data(seed: int) -> Split:
    """Normal-only training windows; eval = normals plus equal numbers of each anomaly."""
    rng_train = np.random.default_rng([seed, 1])
    rng_eval = np.random.default_rng([seed, 2])
    x_train = to_input(np.stack([window(rng_train) for _ in range(TRAIN_NORMAL)]))
    kinds: list[str | None] = [None] * EVAL_NORMAL
    for kind in ANOMALY_KINDS:
        kinds += [kind] * EVAL_PER_ANOMALY
    order = rng_eval.permutation(len(kinds))
    kinds = [kinds[i] for i in order]
    x_eval = to_input(np.stack([window(rng_eval, kind) for kind in kinds]))
    y_eval = np.array([0 if kind is None else 1 for kind in kinds], dtype=np.int64)
    return Split(x_train, np.zeros(len(x_train), np.int64), x_eval, y_eval)


def build_model(keras: Any, batch_size: int | None) -> Any:
    """FC autoencoder as in MLPerf Tiny ad01: 640-128x4-8-128x4-640, BN + ReLU on hidden."""
    layers = keras.layers
    inputs = keras.Input((FRAMES * MELS,), batch_size=batch_size, name="input")
    x = inputs
    widths = [128, 128, 128, 128, 8, 128, 128, 128, 128]
    for i, width in enumerate(widths, start=1):
        x = layers.Dense(width, name=f"fc{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"fc{i}_bn")(x)
        x = layers.ReLU(name=f"fc{i}_relu")(x)
    outputs = layers.Dense(FRAMES * MELS, name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="ad_autoencoder")


def train(keras: Any, model: Any, split: Split, seed: int) -> None:
    """Reconstruct normal windows (MSE), Adam with cosine decay."""
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mean_squared_error")
    log("ad", f"training {EPOCHS} epochs on {len(split.x_train)} normal windows")
    fit(
        keras,
        "ad",
        model,
        split.x_train,
        split.x_train,
        epochs=EPOCHS,
        batch_size=BATCH,
        every=10,
        extra_callbacks=[cosine_schedule(keras, 2e-3, EPOCHS)],
    )


BENCHMARK = Benchmark(
    name="ad",
    task="anomaly detection (synthetic machine-sound log-mel windows, normal vs anomaly)",
    topology="FC autoencoder 640-128x4-8-128x4-640 (MLPerf Tiny ad01)",
    input_shape=(FRAMES * MELS,),
    classes=2,
    metric="auc",
    seed=4001,
    synthetic=True,
    source=(
        "synthetic, generated by edgebench.suite.build.ad: harmonic machine spectra on a "
        "drifting fundamental; anomalies = inter-harmonics, impulses, shifted resonance"
    ),
    preprocessing=(
        f"5 frames x 128 log-mel bands (dB, 0-8 kHz) flattened to 640, "
        f"(dB - {DB_OFFSET:g}) / {DB_SCALE:g}; int8 = round(value / input scale) + zero point; "
        "score = mean squared error between dequantized input and dequantized output"
    ),
    training=(
        f"{TRAIN_NORMAL} normal windows only; MSE, Adam, cosine LR 2e-3, {EPOCHS} epochs, "
        f"batch {BATCH}"
    ),
    calibration_size=500,
    make_data=make_data,
    build_model=build_model,
    train=train,
)
