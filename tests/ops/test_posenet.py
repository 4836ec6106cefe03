"""Tests for tflite_inverter/ops/posenet.py (Coral's PosenetDecoderOp).

LiteRT has no kernel for the op, so the oracle is a Python transcription of Coral's
``src/cpp/posenet/posenet_decoder.cc`` and ``posenet_decoder_op.cc`` (google-coral/edgetpu),
written here loop for loop in float32, with libstdc++'s ``std::priority_queue`` (push_heap /
__adjust_heap) for the candidate and decode queues, run on seeded one-op models.
"""

from __future__ import annotations

import math

import numpy as np
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema

import tflite_inverter as ti
from flatbuffer_writer import pack

F = np.float32
K, E = 17, 16
FORWARD = [(0, 1), (1, 3), (0, 2), (2, 4), (0, 5), (5, 7), (7, 9), (5, 11), (11, 13), (13, 15), (0, 6), (6, 8),
           (8, 10), (6, 12), (12, 14), (14, 16)]
EDGE_LIST = FORWARD + [(b, a) for a, b in FORWARD]


# -- libstdc++ priority_queue ------------------------------------------------------------------------
class PriorityQueue:
    """std::priority_queue<T, vector<T>, less-by-score>: push_heap / pop_heap as in libstdc++."""

    def __init__(self):
        self.c = []

    def push(self, item):
        self.c.append(item)
        self._push_heap(len(self.c) - 1, 0, item)

    def _push_heap(self, hole, top, value):
        parent = (hole - 1) // 2
        while hole > top and self.c[parent][-1] < value[-1]:
            self.c[hole] = self.c[parent]
            hole = parent
            parent = (hole - 1) // 2
        self.c[hole] = value

    def pop(self):
        top = self.c[0]
        if len(self.c) > 1:
            length = len(self.c) - 1
            value = self.c[length]
            self.c[length] = self.c[0]
            hole, child = 0, 0
            while child < (length - 1) // 2:
                child = 2 * (child + 1)
                if self.c[child][-1] < self.c[child - 1][-1]:
                    child -= 1
                self.c[hole] = self.c[child]
                hole = child
            if length % 2 == 0 and child == (length - 2) // 2:
                child = 2 * (child + 1)
                self.c[hole] = self.c[child - 1]
                hole = child - 1
            self._push_heap(hole, 0, value)
        self.c.pop()
        return top

    def __len__(self):
        return len(self.c)


# -- posenet_decoder.cc ------------------------------------------------------------------------------
def clamp(v, lo, hi):
    return lo if v < lo else hi if hi < v else v


def sample(tensor, y, x, channels):
    height, width = tensor.shape[:2]

    def linear(v, n):
        projected = clamp(v, F(0), F(n - 1))
        low, high = int(math.floor(projected)), int(math.ceil(projected))
        return low, high, F(v - F(low))

    y0, y1, yl = linear(y, height)
    x0, x1, xl = linear(x, width)
    one = F(1)
    return [F((one - yl) * F(F((one - xl) * tensor[y0, x0, c]) + F(xl * tensor[y0, x1, c]))
              + F(yl * F(F((one - xl) * tensor[y1, x0, c]) + F(xl * tensor[y1, x1, c])))) for c in channels]


def displaced(shorts, mids, point, edge_id, target):
    height, width = shorts.shape[:2]
    y, x = point
    offsets = sample(mids, y, x, [edge_id, E + edge_id])
    y, x = clamp(F(y + offsets[0]), F(0), F(height - 1)), clamp(F(x + offsets[1]), F(0), F(width - 1))
    for _ in range(5):
        offsets = sample(shorts, y, x, [target, K + target])
        y, x = clamp(F(y + offsets[0]), F(0), F(height - 1)), clamp(F(x + offsets[1]), F(0), F(width - 1))
    return (y, x)


def sigmoid(x):
    return F(F(1) / F(F(1) + F(np.exp(F(-x)))))


def decreasing_argsort(values):
    return sorted(range(len(values)), key=lambda i: -values[i])  # stable, as std::sort for <= 16


def backtrack(scores, shorts, mids, root):
    children = [[] for _ in range(K)]
    for k, (parent, child) in enumerate(EDGE_LIST):
        children[parent].append((child, k))
    points, logits = [(F(-1), F(-1))] * K, [F(-1e5)] * K
    queue = PriorityQueue()
    queue.push((root[0], root[1], sample(scores, *root[0], [root[1]])[0]))
    decoded = [False] * K
    while len(queue):
        point, kid, score = queue.pop()
        if decoded[kid]:
            continue
        points[kid], logits[kid], decoded[kid] = point, score, True
        for child, edge in children[kid]:
            if decoded[child]:
                continue
            if edge > E:
                edge += E
            child_point = displaced(shorts, mids, point, edge, child)
            queue.push((child_point, child, sample(scores, *child_point, [child])[0]))
    return points, logits


def decode_all_poses(scores, shorts, mids, max_detections, threshold, nms_radius, stride):
    height, width = scores.shape[:2]
    threshold = F(threshold)
    min_logit = F(-math.log(1.0 / (float(threshold) + 1e-6) - 1.0))
    queue = PriorityQueue()
    for y in range(height):
        for x in range(width):
            for j in range(K):
                score = scores[y, x, j]
                if score >= min_logit:
                    window = scores[max(y - 1, 0):min(y + 2, height), max(x - 1, 0):min(x + 2, width), j]
                    if not (window > score).any():
                        point = (clamp(F(y + shorts[y, x, j]), F(0), F(height - 1)),
                                 clamp(F(x + shorts[y, x, j + K]), F(0), F(width - 1)))
                        queue.push((point, j, score))
    squared = F(nms_radius * nms_radius)
    poses, keypoint_scores, instance_scores = [], [], []
    while len(poses) < max_detections and len(queue):
        point, kid, score = queue.pop()
        if any(F(F(F(p[kid][0] - point[0]) ** 2) + F(F(p[kid][1] - point[1]) ** 2)) <= squared for p in poses):
            continue
        points, logits = backtrack(scores, shorts, mids, (point, kid))
        probabilities = [sigmoid(v) for v in logits]
        total = F(0)
        for i in decreasing_argsort(probabilities):
            total = F(total + probabilities[i])
        instance = F(total / F(K))
        if instance >= threshold:
            poses.append(points)
            keypoint_scores.append(probabilities)
            instance_scores.append(instance)
    order = decreasing_argsort(instance_scores)
    rescored = list(instance_scores)
    for i, current in enumerate(order):
        occluded = [False] * K
        for previous in order[:i]:
            for k in range(K):
                dy, dx = F(poses[previous][k][0] - poses[current][k][0]), F(poses[previous][k][1] - poses[current][k][1])
                if F(F(dy * dy) + F(dx * dx)) <= squared:
                    occluded[k] = True
        total = F(0)
        for k in decreasing_argsort(keypoint_scores[current]):
            if not occluded[k]:
                total = F(total + keypoint_scores[current][k])
        rescored[current] = F(total / F(K))
    out_points = np.zeros([max_detections, K, 2], np.float32)
    out_keypoint_scores = np.zeros([max_detections, K], np.float32)
    out_scores = np.zeros([max_detections], np.float32)
    n = 0
    for index in decreasing_argsort(rescored):
        if rescored[index] < threshold:
            break
        out_points[n] = np.array(poses[index], np.float32) * F(stride)
        out_keypoint_scores[n] = keypoint_scores[index]
        out_scores[n] = rescored[index]
        n += 1
    return out_points, out_keypoint_scores, out_scores, n


# -- models ----------------------------------------------------------------------------------------
def decoder_model(height, width, options, quantization=None) -> bytes:
    """One PosenetDecoderOp; ``quantization``: per-input (scale, zero_point) for uint8 inputs."""
    model = schema.ModelT()
    model.version, model.buffers = 3, [schema.BufferT()]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode, code.version = "PosenetDecoderOp", 1
    model.operatorCodes = [code]
    sg = schema.SubGraphT()
    d = options["max_detections"]
    specs = [("heatmaps", [1, height, width, K]), ("shorts", [1, height, width, 2 * K]), ("mids", [1, height, width, 4 * E]),
             ("keypoints", [1, d, K, 2]), ("keypoint_scores", [1, d, K]), ("scores", [1, d]), ("count", [1])]
    sg.tensors = []
    for i, (name, shape) in enumerate(specs):
        tensor = schema.TensorT()
        tensor.name, tensor.shape = name, shape
        tensor.type = schema.TensorType.UINT8 if quantization and i < 3 else schema.TensorType.FLOAT32
        if quantization and i < 3:
            tensor.quantization = schema.QuantizationParametersT()
            tensor.quantization.scale, tensor.quantization.zeroPoint = [quantization[i][0]], [quantization[i][1]]
        model.buffers.append(schema.BufferT())
        tensor.buffer = len(model.buffers) - 1
        sg.tensors.append(tensor)
    sg.inputs, sg.outputs = [0, 1, 2], [3, 4, 5, 6]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3, 4, 5, 6]
    op.customOptions = list(flexbuffers.Dumps(options))
    op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
    sg.operators = [op]
    model.subgraphs = [sg]
    return pack(model)


def synthetic_maps(rng, height, width, people):
    """Heatmap logits with a few people (peaks per keypoint) on noise, offsets pointing roughly at them."""
    scores = rng.normal(-1.8, 0.5, (height, width, K)).astype(np.float32)
    for _ in range(people):
        cy, cx = rng.uniform(1, height - 2), rng.uniform(1, width - 2)
        for k in range(K):
            y, x = int(np.clip(cy + rng.normal(0, 1.5), 0, height - 1)), int(np.clip(cx + rng.normal(0, 1.5), 0, width - 1))
            scores[y, x, k] = rng.uniform(0.5, 4)
    shorts = rng.normal(0, 0.4, (height, width, 2 * K)).astype(np.float32)
    mids = rng.normal(0, 1.5, (height, width, 4 * E)).astype(np.float32)
    return scores, shorts, mids


OPTIONS = {"max_detections": 6, "score_threshold": 0.2, "stride": 16, "nms_radius": 20.0}


def check(outputs, expected, atol):
    points, keypoint_scores, scores, count = (np.asarray(v) for v in outputs)
    e_points, e_keypoint_scores, e_scores, e_count = expected
    assert int(count[0]) == e_count
    np.testing.assert_allclose(points[0], e_points, rtol=0, atol=atol * 16)
    np.testing.assert_allclose(keypoint_scores[0], e_keypoint_scores, rtol=0, atol=atol)
    np.testing.assert_allclose(scores[0], e_scores, rtol=0, atol=atol)


def test_float_decoder():
    """Eight people, six detections allowed: the loop stops at max_detections."""
    rng = np.random.default_rng(1)
    people = 8
    height, width = 7, 8
    inverted = ti.invert(decoder_model(height, width, OPTIONS))
    scores, shorts, mids = synthetic_maps(rng, height, width, people)
    outputs = inverted.run([scores[None], shorts[None], mids[None]]).values()
    inv_stride = F(1.0 / OPTIONS["stride"])
    expected = decode_all_poses(scores, shorts * inv_stride, mids * inv_stride, OPTIONS["max_detections"],
                                OPTIONS["score_threshold"], F(OPTIONS["nms_radius"]) / F(OPTIONS["stride"]), OPTIONS["stride"])
    assert expected[3] == OPTIONS["max_detections"]
    check(list(outputs), expected, atol=2e-6)  # positions exact; scores within an ulp (expf)


def test_uint8_decoder_with_tied_scores():
    """Quantized maps: equal scores everywhere, so the priority queue's tie order decides."""
    rng = np.random.default_rng(7)
    height, width = 7, 8
    quant = [(0.25, 128), (0.5, 120), (0.75, 128)]
    options = dict(OPTIONS, max_detections=5)
    inverted = ti.invert(decoder_model(height, width, options, quant))
    scores, shorts, mids = synthetic_maps(rng, height, width, 6)
    q = [np.clip(np.round(v / s) + z, 0, 255).astype(np.uint8) for v, (s, z) in zip((scores, shorts, mids), quant)]
    outputs = inverted.run([q[0][None], q[1][None], q[2][None]]).values()
    inv_stride = F(1.0 / options["stride"])
    deq = [(qi.astype(np.float32) - F(z)) * F(F(s) * (inv_stride if i else F(1))) for i, (qi, (s, z)) in enumerate(zip(q, quant))]
    candidates = deq[0][deq[0] >= 0]
    assert len(candidates) > len(set(candidates.tolist()))  # ties among candidate scores
    expected = decode_all_poses(deq[0], deq[1], deq[2], options["max_detections"], options["score_threshold"],
                                F(options["nms_radius"]) / F(options["stride"]), options["stride"])
    assert expected[3] >= 2
    check(list(outputs), expected, atol=2e-6)
