"""``vww``: person / no-person with MLPerf Tiny's MobileNetV1 (alpha 0.25), on tiny real images.

Why this data: Visual Wake Words (COCO) is not available offline. scikit-image
ships ``lfw_subset()``: 100 real face crops and 100 non-face patches, 25x25
grayscale. That is a face / no-face stand-in for person / no-person, small and
honest about it:

- person (1): the 100 LFW faces, split 40 for training and 60 for eval;
- no person (0): the 100 LFW non-face patches (40 / 60), plus square patches
  cut at random positions and scales from the 20 photos bundled with
  scikit-image that show no person. Each photo is split by columns: training
  patches come from its left 60 %, eval patches from the right 40 %, so no eval
  pixel was seen in training. (An earlier split by whole photo left the
  training set with too few textures: grass, gravel and coins were then called
  "person" half the time, which measured the lack of data, not the model.)
  Photos with people (astronaut, camera, the GIF) and the CT phantom are left
  out.

Every image goes through the same path: grayscale 25x25 in [0, 1], upscaled
bilinearly to 96x96 and repeated to 3 channels, so neither colour nor
resolution tells the classes apart. Training uses augmented copies (flip,
small rotation/zoom/shift, brightness and contrast, pixel noise); the eval set
is not augmented.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgebench.suite.build.blocks import classifier_head, conv_bn, depthwise_separable
from edgebench.suite.build.spec import Benchmark, Split
from edgebench.suite.build.training import cosine_schedule, fit, log

SIZE = 96
TILE = 25
FACES_TRAIN = 40
NONFACES_TRAIN = 40
PHOTOS = (
    "brick.png",
    "cell.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "color.png",
    "grass.png",
    "gravel.png",
    "horse.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "logo.png",
    "microaneurysms.png",
    "moon.png",
    "motorcycle_left.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
)
#: Training patches come from the left part of each photo, eval patches from the
#: rest; the two regions never overlap.
TRAIN_REGION = 0.6
PATCHES_PER_TRAIN_PHOTO = 50
PATCHES_PER_EVAL_PHOTO = 10
FACE_AUGMENTS = 20
NONFACE_AUGMENTS = 10
EPOCHS = 15
BATCH = 32


def _photo(name: str) -> np.ndarray:
    """A bundled scikit-image photo as grayscale float in [0, 1] (alpha dropped)."""
    import skimage.data
    from skimage import io
    from skimage.color import rgb2gray

    image = io.imread(Path(skimage.data.data_dir) / name)
    image = np.asarray(image, dtype=np.float64)
    image = rgb2gray(image[..., :3] / 255.0) if image.ndim == 3 else image / 255.0
    return np.clip(image, 0.0, 1.0)


def photo_patches(part: str, per_photo: int, rng: np.random.Generator) -> np.ndarray:
    """Random square crops of every photo's ``part`` ("train" or "eval") as 25x25 tiles.

    The train part is the left ``TRAIN_REGION`` of the columns, the eval part
    the rest; crop sides are 15-60 % of the part's shorter side.
    """
    from skimage.transform import resize

    tiles = []
    for name in PHOTOS:
        image = _photo(name)
        cut = round(TRAIN_REGION * image.shape[1])
        region = image[:, :cut] if part == "train" else image[:, cut:]
        h, w = region.shape
        for _ in range(per_photo):
            side = int(rng.uniform(0.15, 0.6) * min(h, w))
            top = int(rng.integers(0, h - side + 1))
            left = int(rng.integers(0, w - side + 1))
            crop = region[top : top + side, left : left + side]
            tiles.append(resize(crop, (TILE, TILE), order=1, anti_aliasing=True))
    return np.stack(tiles)


def augment(tiles: np.ndarray, copies: int, rng: np.random.Generator) -> np.ndarray:
    """``copies`` randomly transformed versions of each 25x25 tile."""
    from skimage.transform import AffineTransform, warp

    centre = np.array([(TILE - 1) / 2, (TILE - 1) / 2])
    out = []
    for tile in tiles:
        for _ in range(copies):
            image = tile[:, ::-1] if rng.random() < 0.5 else tile
            angle = np.deg2rad(rng.uniform(-12, 12))
            zoom = rng.uniform(0.9, 1.12)
            shift = rng.uniform(-2, 2, 2)
            transform = (
                AffineTransform(translation=-centre)
                + AffineTransform(rotation=angle, scale=zoom)
                + AffineTransform(translation=centre + shift)
            )
            image = warp(image, transform.inverse, order=1, mode="reflect")
            contrast = rng.uniform(0.7, 1.3)
            brightness = rng.uniform(-0.15, 0.15)
            image = (image - image.mean()) * contrast + image.mean() + brightness
            image = image + rng.normal(0.0, 0.02, image.shape)
            out.append(np.clip(image, 0.0, 1.0))
    return np.stack(out)


def to_input(tiles: np.ndarray) -> np.ndarray:
    """25x25 grayscale tiles -> float32 [N, 96, 96, 3] in [0, 1] (bilinear upscale)."""
    from skimage.transform import resize

    big = np.stack([resize(t, (SIZE, SIZE), order=1, anti_aliasing=False) for t in tiles])
    big = np.clip(big, 0.0, 1.0)
    return np.ascontiguousarray(np.repeat(big[..., None], 3, axis=-1), dtype=np.float32)


def make_data(seed: int) -> Split:
    """Face / non-face split as in the module docstring; training is augmented."""
    from skimage.data import lfw_subset

    lfw = lfw_subset()
    faces, nonfaces = lfw[:100], lfw[100:]
    rng = np.random.default_rng([seed, 1])
    face_order = rng.permutation(100)
    nonface_order = rng.permutation(100)
    train_faces = faces[face_order[:FACES_TRAIN]]
    eval_faces = faces[face_order[FACES_TRAIN:]]
    train_nonfaces = nonfaces[nonface_order[:NONFACES_TRAIN]]
    eval_nonfaces = nonfaces[nonface_order[NONFACES_TRAIN:]]
    train_patches = photo_patches("train", PATCHES_PER_TRAIN_PHOTO, rng)
    eval_patches = photo_patches("eval", PATCHES_PER_EVAL_PHOTO, rng)

    train_pos = augment(train_faces, FACE_AUGMENTS, rng)
    train_neg = np.concatenate(
        [augment(train_nonfaces, NONFACE_AUGMENTS, rng), augment(train_patches, 1, rng)]
    )
    x_train = to_input(np.concatenate([train_pos, train_neg]))
    y_train = np.concatenate([np.ones(len(train_pos)), np.zeros(len(train_neg))])

    eval_tiles = np.concatenate([eval_faces, eval_nonfaces, eval_patches])
    y_eval = np.concatenate([np.ones(len(eval_faces)), np.zeros(len(eval_tiles) - len(eval_faces))])
    order = rng.permutation(len(eval_tiles))
    return Split(
        x_train,
        y_train.astype(np.int64),
        to_input(eval_tiles[order]),
        y_eval[order].astype(np.int64),
    )


def build_model(keras: Any, batch_size: int | None) -> Any:
    """MobileNetV1 alpha 0.25 at 96x96 as in MLPerf Tiny vww01 (14 conv + 13 depthwise)."""
    inputs = keras.Input((SIZE, SIZE, 3), batch_size=batch_size, name="input")
    x = conv_bn(keras, inputs, 8, (3, 3), 2, "stem")
    plan = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)]
    plan += [(128, 1)] * 5 + [(256, 2), (256, 1)]
    for i, (filters, strides) in enumerate(plan, start=1):
        x = depthwise_separable(keras, x, filters, strides, f"block{i}")
    outputs = classifier_head(keras, x, 2, dropout=0.2)
    return keras.Model(inputs, outputs, name="vww_mobilenetv1_025")


def train(keras: Any, model: Any, split: Split, seed: int) -> None:
    """Adam with cosine decay on the augmented face / non-face tiles."""
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    log("vww", f"training {EPOCHS} epochs on {len(split.x_train)} augmented images")
    fit(
        keras,
        "vww",
        model,
        split.x_train,
        split.y_train,
        epochs=EPOCHS,
        batch_size=BATCH,
        every=5,
        extra_callbacks=[cosine_schedule(keras, 2e-3, EPOCHS)],
    )


BENCHMARK = Benchmark(
    name="vww",
    task="person / no-person stand-in (real LFW face vs non-face tiles, 2 classes)",
    topology="MobileNetV1 alpha 0.25, 96x96 (MLPerf Tiny vww01)",
    input_shape=(SIZE, SIZE, 3),
    classes=2,
    metric="top1",
    seed=3001,
    synthetic=False,
    source=(
        "skimage.data.lfw_subset() (100 face + 100 non-face 25x25 grayscale crops) plus "
        "no-person patches from skimage's bundled photos; eval: 60 faces, 60 LFW non-faces, "
        f"{len(PHOTOS) * PATCHES_PER_EVAL_PHOTO} patches from the eval part of {len(PHOTOS)} "
        "photos (the training patches come from a disjoint part of the same photos)"
    ),
    preprocessing=(
        "25x25 grayscale in [0, 1] upscaled bilinearly to 96x96, repeated to 3 channels; "
        "int8 = round(255 * value) - 128 (input scale 1/255, zero point -128)"
    ),
    training=(
        f"{FACES_TRAIN} faces x {FACE_AUGMENTS} augmented copies, {NONFACES_TRAIN} LFW "
        f"non-faces x {NONFACE_AUGMENTS}, {len(PHOTOS) * PATCHES_PER_TRAIN_PHOTO} photo "
        f"patches x 1 (flip, rotation, zoom, shift, brightness, contrast, noise); Adam, "
        f"cosine LR 2e-3, {EPOCHS} epochs, batch {BATCH}"
    ),
    calibration_size=1000,
    make_data=make_data,
    build_model=build_model,
    train=train,
)
