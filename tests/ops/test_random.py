"""Parity tests for tflite_inverter/ops/random.py.

What "matching" means for random ops (see the module's docstring): with seeds, the inverted model
reproduces LiteRT's Philox streams, so invocation k of the inverted model equals invocation k of a
fresh interpreter value for value, and verify's draws (one interpreter, invoked draw after draw)
are compared like any other op's. With ``seed == seed2 == 0`` both runtimes pick a nondeterministic
seed: the samples are compared as distributions (Kolmogorov-Smirnov and chi-square tests), each at
significance 1e-4; there are 12 such checks, so a correct builder fails this file by chance with
probability at most 1.2e-3 per run (the seeded tests are deterministic).

What the converter does to the TF code here, and so what the tests can and cannot cover:

* ``tf.random.uniform(shape, seed=s)`` becomes RANDOM_UNIFORM with seed 87654321 (TensorFlow's
  default graph seed) and seed2 s; ``minval``/``maxval`` become MUL and ADD; without a seed both
  options are 0. Only float32 samples and an int32 shape convert (RandomUniformInt, float16 and an
  int64 shape are refused), so other seeds are set by editing the options.
* ``tf.random.categorical`` becomes MULTINOMIAL with float32 logits and an int64 or int32 output.
* verify stacks the draws' outputs, so every draw of a model has the same shape.
"""

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

import tflite_inverter as ti
from parity import assert_parity, convert

ALPHA = 1e-4

SAMPLERS = {
    "RANDOM_UNIFORM": lambda shape, seed: tf.random.uniform(shape, seed=seed),
    "RANDOM_STANDARD_NORMAL": lambda shape, seed: tf.random.normal(shape, seed=seed),
}
THEORETICAL = {"RANDOM_UNIFORM": stats.uniform.cdf, "RANDOM_STANDARD_NORMAL": stats.norm.cdf}


@pytest.fixture(autouse=True)
def no_global_seed():
    """The models here are converted without a global seed (the converter then writes TF's default
    graph seed, 87654321): a global seed another test left set would change what is written."""
    tf.random.set_seed(None)


def shape_model(opcode, seed):
    return convert(lambda s: SAMPLERS[opcode](s, seed), [tf.TensorSpec([3], tf.int32)])


def random_options(model):
    (op,) = [op for op in ti.load(model).main.operators if op.opcode in ("RANDOM_UNIFORM", "RANDOM_STANDARD_NORMAL", "MULTINOMIAL")]
    return op.options["seed"], op.options["seed2"]


def with_seeds(model, seed, seed2):
    from flatbuffer_writer import edit

    def set_seeds(m):
        for op in m.subgraphs[0].operators:
            if op.builtinOptions is not None and hasattr(op.builtinOptions, "seed2"):
                op.builtinOptions.seed, op.builtinOptions.seed2 = seed, seed2

    return edit(model, set_seeds)


def litert_samples(model, feeds, invocations):
    """Outputs of ``invocations`` successive invocations of one interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, num_threads=1)
    details = interpreter.get_input_details()
    for detail, value in zip(details, feeds):
        interpreter.resize_tensor_input(detail["index"], value.shape)
    interpreter.allocate_tensors()
    out = []
    for _ in range(invocations):
        for detail, value in zip(details, feeds):
            interpreter.set_tensor(detail["index"], value)
        interpreter.invoke()
        out.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy())
    return out


def inverted_samples(model, feeds, invocations):
    inverted = ti.invert(model)
    return [next(iter(inverted.run(list(feeds)).values())) for _ in range(invocations)]


# -- seeded: LiteRT's streams, value for value ------------------------------------------------------

@pytest.mark.parametrize("opcode", list(SAMPLERS))
def test_seeded_stream(opcode):
    """Three successive invocations (verify's draws) of a run-time shape, odd sizes included (an odd
    count leaves part of a Philox block unused)."""
    model = shape_model(opcode, seed=3)
    assert random_options(model) == (87654321, 3)
    assert_parity(model, [opcode], inputs=[[np.array([5, 7, 9], np.int32)]] * 3)


@pytest.mark.parametrize("opcode", list(SAMPLERS))
@pytest.mark.parametrize("seed,seed2", [(1, 0), (0, 1), (-5, 2**31 + 3), (2**62 + 11, -1)])
def test_seeds(opcode, seed, seed2):
    """The seeds are carried: one seed alone, negative seeds, and int64 options, of which LiteRT keeps
    the low 32 bits, sign-extended (2**31 + 3 acts as -2**31 + 3, 2**62 + 11 as 11)."""
    model = with_seeds(shape_model(opcode, seed=3), seed, seed2)
    assert random_options(model) == (seed, seed2)
    assert_parity(model, [opcode], inputs=[[np.array([2, 4, 8], np.int32)]] * 2)


@pytest.mark.parametrize("opcode", list(SAMPLERS))
def test_seed_high_bits_only_is_unseeded(opcode):
    """Seeds 2**32 and 0 are 0 and 0 for LiteRT: nondeterministic; so for the inverted model (two
    fresh models give different samples)."""
    model = with_seeds(shape_model(opcode, seed=3), 2**32, 0)
    feeds = [np.array([4, 4, 4], np.int32)]
    first, second = inverted_samples(model, feeds, 1)[0], inverted_samples(model, feeds, 1)[0]
    assert first.shape == (4, 4, 4) and not np.array_equal(first, second)


def test_seeded_constant_shape():
    """A constant shape (a static output), added to a model input."""
    model = convert(lambda x: tf.random.normal([4, 6], seed=9) + tf.random.uniform([4, 6], seed=10) * x,
                    [tf.TensorSpec([4, 6], tf.float32)])
    assert_parity(model, ["RANDOM_STANDARD_NORMAL", "RANDOM_UNIFORM"], draws=3)


@pytest.mark.parametrize("out_dtype", [tf.int64, tf.int32])
def test_multinomial_stream(out_dtype):
    """Run-time logits with -inf, +inf and NaN entries (non-finite logits are skipped: never drawn),
    an odd sample count, three invocations."""
    model = convert(lambda logits: tf.random.categorical(logits, 7, dtype=out_dtype, seed=4),
                    [tf.TensorSpec([None, None], tf.float32)])
    assert random_options(model) == (87654321, 4)
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, [5, 6]).astype(np.float32)
    logits[0, :2] = -np.inf
    logits[1, 3] = np.nan
    logits[2, 5] = np.inf
    assert_parity(model, ["MULTINOMIAL"], inputs=[[logits]] * 3)


def test_multinomial_large_batch():
    """256 rows: TensorFlow's own Multinomial kernel shards rows over threads and restarts each
    shard's stream, which LiteRT does not; the builder follows LiteRT's single stream."""
    model = convert(lambda logits: tf.random.categorical(logits, 33, seed=5), [tf.TensorSpec([256, 100], tf.float32)])
    assert_parity(model, ["MULTINOMIAL"], draws=2, float_range=(-4.0, 4.0))


def test_saved_model_keeps_the_stream(tmp_path):
    """The block counter is a variable of the module: a SavedModel saved before any call starts where
    a fresh interpreter starts and advances with it."""
    model = convert(lambda s, logits: [tf.random.uniform(s, seed=1), tf.random.categorical(logits, 3, seed=2)],
                    [tf.TensorSpec([2], tf.int32), tf.TensorSpec([2, 4], tf.float32)])
    path = ti.invert(model).save_saved_model(tmp_path / "saved")
    rng = np.random.default_rng(0)
    draw = {"s": np.array([3, 5], np.int32), "logits": rng.normal(0, 1, [2, 4]).astype(np.float32)}
    report = ti.verify(model, str(path), inputs=[draw] * 3)
    assert report.passed, report.table()


# -- unseeded: nondeterministic in both runtimes, compared as distributions -----------------------

@pytest.mark.parametrize("opcode", list(SAMPLERS))
def test_unseeded_distribution(opcode):
    """Seeds 0 and 0: 4 invocations of 8192 samples from each runtime. Both must fit the theoretical
    distribution and each other (Kolmogorov-Smirnov, p > 1e-4; with 32768 samples a side the
    two-sample test rejects a difference in CDF of about 0.017 or more), and successive calls must differ."""
    model = shape_model(opcode, seed=None)
    assert random_options(model) == (0, 0)
    feeds = [np.array([8, 32, 32], np.int32)]
    litert = litert_samples(model, feeds, 4)
    inverted = inverted_samples(model, feeds, 4)
    assert inverted[0].shape == litert[0].shape == (8, 32, 32) and inverted[0].dtype == litert[0].dtype == np.float32
    assert not np.array_equal(inverted[0], inverted[1]) and not np.array_equal(litert[0], litert[1])
    litert, inverted = np.concatenate([a.ravel() for a in litert]), np.concatenate([a.ravel() for a in inverted])
    for sample in (litert, inverted):
        assert stats.kstest(sample, THEORETICAL[opcode]).pvalue > ALPHA
    assert stats.ks_2samp(litert, inverted).pvalue > ALPHA


def test_unseeded_multinomial_distribution():
    """Seeds 0 and 0: 4000 draws over 5 classes in each of 2 rows from each runtime; the class counts
    must fit softmax(logits) (chi-square goodness of fit) and each other (chi-square test of
    homogeneity), each at p > 1e-4."""
    model = convert(lambda logits: tf.random.categorical(logits, 4000), [tf.TensorSpec([2, 5], tf.float32)])
    assert random_options(model) == (0, 0)
    logits = np.array([[0.0, 1.0, -1.0, 2.0, 0.5], [-3.0, 0.0, 0.0, 1.0, -np.inf]], np.float32)
    (litert,) = litert_samples(model, [logits], 1)
    (inverted,) = inverted_samples(model, [logits], 1)
    assert litert.shape == inverted.shape == (2, 4000) and litert.dtype == inverted.dtype == np.int64
    for row in range(2):
        probabilities = np.exp(logits[row].astype(np.float64))
        probabilities /= probabilities.sum()
        drawn = probabilities > 0
        counts = [np.bincount(sample[row], minlength=5) for sample in (litert, inverted)]
        for count in counts:
            assert np.all(count[~drawn] == 0)
            assert stats.chisquare(count[drawn], 4000 * probabilities[drawn]).pvalue > ALPHA
        assert stats.chi2_contingency(np.stack(counts)[:, drawn]).pvalue > ALPHA
