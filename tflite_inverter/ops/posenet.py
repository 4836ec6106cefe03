"""Coral's ``PosenetDecoderOp`` custom op (google-coral/edgetpu ``src/cpp/posenet/posenet_decoder*.cc``).

Inputs: heatmap logits [1, H, W, 17], short offsets [1, H, W, 34] and mid offsets [1, H, W, 64]
(uint8 quantized or float32). Options (flexbuffer map): ``max_detections``, ``score_threshold``,
``stride``, ``nms_radius``. Outputs (float32): keypoints [1, D, 17, 2] (y, x in pixels), keypoint
scores [1, D, 17], pose scores [1, D] and the pose count [1]. Rows past the count are left
unwritten by the kernel; here they are 0.

The decoder, step for step as the C++:

1. dequantize as the kernel does: ``(q - zero_point) * (scale * (1 / stride))`` for the offsets;
2. candidates: every (y, x, keypoint) whose logit is >= logodds(threshold) and no larger than
   any neighbour in its 3x3 window, at the position refined by its short offset; they are
   pushed in scan order into a ``std::priority_queue`` and popped by score. The builder keeps
   libstdc++'s binary heap itself (push_heap / __adjust_heap), so equal scores (common with
   uint8 heatmaps) come out in the kernel's order;
3. per root popped: rejected if within nms_radius of the same keypoint of an accepted pose;
   else the pose is decoded along the keypoint tree (mid offsets to the child, then five
   short-offset refinements, bilinear sampling as the kernel's, clamped to the grid). The tree
   makes the result independent of the decode queue's order, so it is walked breadth first.
   Keypoint scores are the sigmoid of the sampled logits, the instance score their mean
   (summed in decreasing order); kept if >= threshold;
4. soft keypoint NMS rescoring in decreasing instance-score order, then the final order. The
   kernel uses ``std::sort`` (stable for up to 16 poses); the builder sorts stably.

The kernel's edge index shift (``edge_id > kNumEdges``, so the first backward edge reads the
forward x block) is kept.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import tensorflow as tf

from .registry import register_custom
from .signal_library import flexbuffer_options

NUM_KEYPOINTS, NUM_EDGES = 17, 16
_NOSE, _L_EYE, _R_EYE, _L_EAR, _R_EAR, _L_SHOULDER, _R_SHOULDER, _L_ELBOW, _R_ELBOW = range(9)
_L_WRIST, _R_WRIST, _L_HIP, _R_HIP, _L_KNEE, _R_KNEE, _L_ANKLE, _R_ANKLE = range(9, 17)
FORWARD_EDGES = [(_NOSE, _L_EYE), (_L_EYE, _L_EAR), (_NOSE, _R_EYE), (_R_EYE, _R_EAR), (_NOSE, _L_SHOULDER),
                 (_L_SHOULDER, _L_ELBOW), (_L_ELBOW, _L_WRIST), (_L_SHOULDER, _L_HIP), (_L_HIP, _L_KNEE),
                 (_L_KNEE, _L_ANKLE), (_NOSE, _R_SHOULDER), (_R_SHOULDER, _R_ELBOW), (_R_ELBOW, _R_WRIST),
                 (_R_SHOULDER, _R_HIP), (_R_HIP, _R_KNEE), (_R_KNEE, _R_ANKLE)]
EDGES = FORWARD_EDGES + [(child, parent) for parent, child in FORWARD_EDGES]


def _decode_plans() -> np.ndarray:
    """For each root keypoint, 16 (parent, child, mid-offset channel) steps, parents first."""
    children = {k: [] for k in range(NUM_KEYPOINTS)}
    for edge, (parent, child) in enumerate(EDGES):
        channel = edge + NUM_EDGES if edge > NUM_EDGES else edge  # the kernel's shift, strict >
        children[parent].append((child, channel))
    plans = np.zeros([NUM_KEYPOINTS, NUM_KEYPOINTS - 1, 3], np.int32)
    for root in range(NUM_KEYPOINTS):
        seen, queue, steps = {root}, deque([root]), []
        while queue:
            node = queue.popleft()
            for child, channel in children[node]:
                if child not in seen:
                    seen.add(child)
                    steps.append((node, child, channel))
                    queue.append(child)
        plans[root] = steps
    return plans


def _dequantized(ctx, value, position: int, extra_scale: float):
    """DequantizeTensor: (q - zero_point) * (scale * extra_scale) for uint8, x * extra_scale for float."""
    tensor = ctx.input_tensor(position)
    extra = np.float32(extra_scale)
    if tensor.dtype == "uint8":
        q = tensor.quantization
        if q is None or q.per_channel:
            raise ctx.fail(f"input {position} is uint8 without per-tensor quantization")
        scale = np.float32(q.scales[0])
        steps = tf.round(value / scale)  # the graph carries scale * (q - zero_point)
        return steps * tf.constant(np.float32(scale * extra), tf.float32)
    if tensor.dtype != "float32":
        raise ctx.fail(f"input {position} is {tensor.dtype}; the kernel takes uint8 or float32")
    return value * tf.constant(extra, tf.float32)


def _sample(tensor, height: int, width: int, y, x, channels):
    """SampleTensorAtMultipleChannels on a [H, W, C] tensor at one point, for a list of channels."""
    def axis(v, n):
        projected = tf.clip_by_value(v, 0.0, n - 1.0)
        low, high = tf.floor(projected), tf.math.ceil(projected)
        return tf.cast(low, tf.int32), tf.cast(high, tf.int32), v - low

    y0, y1, yl = axis(y, height)
    x0, x1, xl = axis(x, width)
    values = tf.gather_nd(tensor, tf.stack([tf.stack([a, b]) for a, b in ((y0, x0), (y0, x1), (y1, x0), (y1, x1))]))
    values = tf.gather(values, channels, axis=1)  # [4, n]
    one = tf.constant(1.0, tf.float32)
    return (one - yl) * ((one - xl) * values[0] + xl * values[1]) + yl * ((one - xl) * values[2] + xl * values[3])


def _heap_push(heap, size, item, key):
    """std::push_heap after push_back: ``item`` sifts up from index ``size`` (max-heap on ``key``)."""
    item_key = tf.gather(key, item)

    def cond(hole, current):
        return (hole > 0) & (tf.gather(key, tf.gather(current, tf.maximum(hole - 1, 0) // 2)) < item_key)

    def body(hole, current):
        parent = (hole - 1) // 2
        return parent, tf.tensor_scatter_nd_update(current, [[hole]], [tf.gather(current, parent)])

    hole, heap = tf.while_loop(cond, body, [size, heap])
    return tf.tensor_scatter_nd_update(heap, [[hole]], [item])


def _heap_pop(heap, size, key):
    """std::pop_heap + pop_back: (top item, heap of size - 1), libstdc++'s __adjust_heap."""
    top = heap[0]
    length = size - 1
    value = tf.gather(heap, length)

    def down_cond(hole, child, current):
        return child < (length - 1) // 2

    def down_body(hole, child, current):
        child = 2 * (child + 1)
        left_wins = tf.gather(key, tf.gather(current, child)) < tf.gather(key, tf.gather(current, child - 1))
        child = tf.where(left_wins, child - 1, child)
        current = tf.tensor_scatter_nd_update(current, [[hole]], [tf.gather(current, child)])
        return child, child, current

    hole, child, heap = tf.while_loop(down_cond, down_body, [tf.constant(0), tf.constant(0), heap])
    odd_tail = tf.equal(length % 2, 0) & tf.equal(child, (length - 2) // 2) & (length > 1)
    last_child = 2 * (child + 1) - 1
    heap = tf.where(odd_tail, tf.tensor_scatter_nd_update(heap, [[hole]], [tf.gather(heap, tf.minimum(last_child, tf.shape(heap)[0] - 1))]), heap)
    hole = tf.where(odd_tail, last_child, hole)

    def up_cond(h, current):
        return (h > 0) & (tf.gather(key, tf.gather(current, tf.maximum(h - 1, 0) // 2)) < tf.gather(key, value))

    def up_body(h, current):
        parent = (h - 1) // 2
        return parent, tf.tensor_scatter_nd_update(current, [[h]], [tf.gather(current, parent)])

    hole, heap = tf.while_loop(up_cond, up_body, [hole, heap])
    heap = tf.where(length > 0, tf.tensor_scatter_nd_update(heap, [[tf.maximum(hole, 0)]], [value]), heap)
    return top, heap


def _sorted_sum(values):
    """Sum in decreasing order of value, one addition at a time (the kernel's loop over the argsort)."""
    ordered = tf.sort(values, direction="DESCENDING")
    total = tf.constant(0.0, tf.float32)
    for k in range(NUM_KEYPOINTS):
        total = total + ordered[k]
    return total


@register_custom("PosenetDecoderOp", max_version=1, check_shape=False, note=(
    "Coral; the C++ decoder step for step (libstdc++ heap order for equal scores); tested against a numpy "
    "transcription of posenet_decoder.cc (LiteRT has no kernel); rows past the pose count are 0"))
def build_posenet_decoder(ctx, op, inputs):
    options = flexbuffer_options(ctx, op)
    max_detections, stride = int(options.get("max_detections", 0)), int(options.get("stride", 0))
    threshold, nms_radius = np.float32(options.get("score_threshold", 0.0)), np.float32(options.get("nms_radius", 0.0))
    if max_detections < 1 or stride < 1:
        raise ctx.fail(f"max_detections {max_detections} and stride {stride} must be positive")
    shapes = [[int(d) for d in ctx.input_tensor(i).shape] for i in range(3)]
    if not (shapes[0][0] == shapes[1][0] == shapes[2][0] == 1 and shapes[0][3] == NUM_KEYPOINTS
            and shapes[1][3] == 2 * NUM_KEYPOINTS and shapes[2][3] == 4 * NUM_EDGES and shapes[0][1:3] == shapes[1][1:3] == shapes[2][1:3]):
        raise ctx.fail(f"input shapes {shapes}: the kernel needs [1, H, W, 17], [1, H, W, 34], [1, H, W, 64]")
    height, width = shapes[0][1], shapes[0][2]
    inv_stride = 1.0 / stride
    scores = _dequantized(ctx, inputs[0], 0, 1.0)[0]
    shorts = _dequantized(ctx, inputs[1], 1, inv_stride)[0]
    mids = _dequantized(ctx, inputs[2], 2, inv_stride)[0]
    min_logit = np.float32(-math.log(1.0 / (float(threshold) + 1e-6) - 1.0))
    radius = np.float32(nms_radius / np.float32(stride))
    squared_radius = tf.constant(np.float32(radius * radius), tf.float32)

    # 2. candidates, in the order the kernel pushes them.
    window_max = tf.nn.max_pool2d(scores[None], 3, 1, "SAME")[0]
    is_candidate = (scores >= min_logit) & (scores >= window_max)
    where = tf.cast(tf.where(is_candidate), tf.int32)  # row-major: y, x, keypoint
    cand_y, cand_x, cand_id = where[:, 0], where[:, 1], where[:, 2]
    cand_score = tf.gather_nd(scores, where)
    dy = tf.gather_nd(shorts, tf.stack([cand_y, cand_x, cand_id], 1))
    dx = tf.gather_nd(shorts, tf.stack([cand_y, cand_x, cand_id + NUM_KEYPOINTS], 1))
    cand_py = tf.clip_by_value(tf.cast(cand_y, tf.float32) + dy, 0.0, height - 1.0)
    cand_px = tf.clip_by_value(tf.cast(cand_x, tf.float32) + dx, 0.0, width - 1.0)
    count = tf.shape(cand_score)[0]

    def push(i, heap):
        return i + 1, _heap_push(heap, i, i, cand_score)

    _, heap = tf.while_loop(lambda i, h: i < count, push, [tf.constant(0), tf.zeros([count], tf.int32)],
                            shape_invariants=[tf.TensorShape([]), tf.TensorShape([None])])

    plans = tf.constant(_decode_plans())

    def decode(root):
        """BacktrackDecodePose for a candidate: (points [17, 2], raw logits [17])."""
        root_id = tf.gather(cand_id, root)
        root_point = tf.stack([tf.gather(cand_py, root), tf.gather(cand_px, root)])
        points = tf.tensor_scatter_nd_update(tf.zeros([NUM_KEYPOINTS, 2]), [[root_id]], [root_point])
        logits = tf.tensor_scatter_nd_update(tf.zeros([NUM_KEYPOINTS]), [[root_id]],
                                             _sample(scores, height, width, root_point[0], root_point[1], root_id[None]))
        plan = tf.gather(plans, root_id)

        def refine(i, y, x, child):
            offset = _sample(shorts, height, width, y, x, tf.stack([child, NUM_KEYPOINTS + child]))
            return (i + 1, tf.clip_by_value(y + offset[0], 0.0, height - 1.0),
                    tf.clip_by_value(x + offset[1], 0.0, width - 1.0), child)

        def step(s, points, logits):
            parent, child, channel = plan[s, 0], plan[s, 1], plan[s, 2]
            y, x = points[parent, 0], points[parent, 1]
            offset = _sample(mids, height, width, y, x, tf.stack([channel, NUM_EDGES + channel]))
            y = tf.clip_by_value(y + offset[0], 0.0, height - 1.0)
            x = tf.clip_by_value(x + offset[1], 0.0, width - 1.0)
            _, y, x, _ = tf.while_loop(lambda i, *_: i < 5, refine, [tf.constant(0), y, x, child])
            points = tf.tensor_scatter_nd_update(points, [[child]], [tf.stack([y, x])])
            logits = tf.tensor_scatter_nd_update(logits, [[child]], _sample(scores, height, width, y, x, child[None]))
            return s + 1, points, logits

        _, points, logits = tf.while_loop(lambda s, *_: s < NUM_KEYPOINTS - 1, step, [tf.constant(0), points, logits])
        return points, logits

    # 3. roots in heap order.
    def main_cond(poses, keypoint_scores, instance_scores, accepted, heap, size):
        return (accepted < max_detections) & (size > 0)

    def main_body(poses, keypoint_scores, instance_scores, accepted, heap, size):
        root, heap = _heap_pop(heap, size, cand_score)
        size = size - 1
        root_id = tf.gather(cand_id, root)
        root_point = tf.stack([tf.gather(cand_py, root), tf.gather(cand_px, root)])
        previous = tf.gather(poses, root_id, axis=1)  # [D, 2]
        delta = previous - root_point[None]
        distance = delta[:, 0] * delta[:, 0] + delta[:, 1] * delta[:, 1]
        blocked = tf.reduce_any((distance <= squared_radius) & (tf.range(max_detections) < accepted))

        def accept():
            points, logits = decode(root)
            probabilities = tf.constant(1.0) / (tf.constant(1.0) + tf.exp(-logits))
            instance = _sorted_sum(probabilities) / tf.constant(float(NUM_KEYPOINTS))
            new_poses = tf.tensor_scatter_nd_update(poses, [[accepted]], [points])
            new_scores = tf.tensor_scatter_nd_update(keypoint_scores, [[accepted]], [probabilities])
            keep = instance >= threshold
            new_instances = tf.where(keep, tf.tensor_scatter_nd_update(instance_scores, [[accepted]], [instance]), instance_scores)
            return new_poses, new_scores, new_instances, accepted + tf.cast(keep, tf.int32)

        poses, keypoint_scores, instance_scores, accepted = tf.cond(
            blocked, lambda: (poses, keypoint_scores, instance_scores, accepted), accept)
        return poses, keypoint_scores, instance_scores, accepted, heap, size

    poses, keypoint_scores, instance_scores, accepted, _, _ = tf.while_loop(
        main_cond, main_body,
        [tf.zeros([max_detections, NUM_KEYPOINTS, 2]), tf.zeros([max_detections, NUM_KEYPOINTS]),
         tf.zeros([max_detections]), tf.constant(0), heap, count],
        shape_invariants=[tf.TensorShape([max_detections, NUM_KEYPOINTS, 2]), tf.TensorShape([max_detections, NUM_KEYPOINTS]),
                          tf.TensorShape([max_detections]), tf.TensorShape([]), tf.TensorShape([None]), tf.TensorShape([])])

    # 4. soft keypoint NMS in decreasing instance-score order, then the final order.
    valid = tf.range(max_detections) < accepted
    masked = tf.where(valid, instance_scores, -np.inf)
    order = tf.argsort(masked, direction="DESCENDING", stable=True)
    rank = tf.argsort(order, stable=True)  # position of each pose in that order
    delta = poses[:, None] - poses[None, :]  # [D, D, 17, 2]
    near = (delta[..., 0] * delta[..., 0] + delta[..., 1] * delta[..., 1]) <= squared_radius
    earlier = (rank[None, :] < rank[:, None]) & valid[None, :]  # [current, previous]
    occluded = tf.reduce_any(near & earlier[..., None], axis=1)  # [D, 17]
    kept = tf.where(occluded, tf.zeros_like(keypoint_scores), keypoint_scores)
    ordered_kept = tf.gather(kept, tf.argsort(keypoint_scores, axis=1, direction="DESCENDING", stable=True), batch_dims=1)
    total = tf.zeros([max_detections])
    for k in range(NUM_KEYPOINTS):
        total = total + ordered_kept[:, k]
    rescored = tf.where(valid, total / tf.constant(float(NUM_KEYPOINTS)), -np.inf)
    final = tf.argsort(rescored, direction="DESCENDING", stable=True)
    final_scores = tf.gather(rescored, final)
    # Output stops at the first pose below the threshold (in the final order).
    below = tf.cast(final_scores < threshold, tf.int32)
    written = tf.cumsum(below) == 0
    n_out = tf.reduce_sum(tf.cast(written, tf.int32))
    mask = tf.cast(written, tf.float32)
    out_points = tf.gather(poses, final) * tf.constant(float(stride)) * mask[:, None, None]
    out_keypoint_scores = tf.gather(keypoint_scores, final) * mask[:, None]
    out_scores = tf.where(written, final_scores, tf.zeros_like(final_scores))
    return [out_points[None], out_keypoint_scores[None], out_scores[None], tf.cast(n_out, tf.float32)[None]]
