"""Non-max suppression: NON_MAX_SUPPRESSION_V4, NON_MAX_SUPPRESSION_V5 and the custom op
``TFLite_Detection_PostProcess`` (SSD box decoding plus multi-class NMS).

NON_MAX_SUPPRESSION_V4/V5 replay TFLite's loop (tflite/kernels/internal/reference/
non_max_suppression.h) in a ``tf.while_loop``, because TensorFlow's NonMaxSuppressionV4/V5 differ:

* TFLite suppresses at ``iou >= iou_threshold``, TensorFlow at ``iou > iou_threshold``;
* with soft NMS (sigma > 0) TFLite still suppresses at ``iou >= iou_threshold``, TensorFlow never;
* TFLite pushes a box it has just selected back into its queue when its score is above the score
  threshold. It is popped again at once and compared with itself: a box of positive area (IoU 1)
  is dropped, but a box of zero area (IoU 0) is selected again, until the output is full;
* equal scores leave TFLite's priority queue (ordered on the score alone) in an order set by its
  heap, where TensorFlow takes the lower box index first: the builder replays libstdc++'s heap
  (hard NMS over distinct scores takes a shortcut through TensorFlow's op, whose order then
  cannot differ).

TFLite_Detection_PostProcess is rebuilt from its kernel (tflite/kernels/detection_postprocess.cc).
Its single-class NMS keeps scores ``>= nms_score_threshold`` (TensorFlow's op: ``>``), visits them
by decreasing score (ties: lower index first) and suppresses at ``iou > nms_iou_threshold`` (as
TensorFlow does), so TensorFlow's NonMaxSuppressionV4 serves with the score threshold moved down
one float32 step. Not replayed: with max_classes_per_detection > 1, TFLite orders a box's classes
with std::partial_sort, which leaves equal class scores in an unspecified order (here: lower class
first); with 1 it takes the first maximum, as here. TFLite leaves output rows past the detections
unwritten (whatever memory held); they are zero here.

Re-conversion: the builder's computation is a nested ``tf.function`` of the op's three inputs whose
``experimental_implements`` names ``TFLite_Detection_PostProcess`` with the options as attributes,
which TFLiteConverter's ``prepare_composite_functions_tf`` pass (from a SavedModel or a frozen
GraphDef) fuses back into the custom op. That pass writes every option but
``detections_per_class``; when that option would change the result (regular NMS, fewer per class
than max_detections) the function is left unmarked and re-converts to TensorFlow ops instead.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from flatbuffers import flexbuffers

from .implements import implements
from .registry import register, register_custom


def _scalar(value, dtype=None):
    value = tf.reshape(value, [])
    return value if dtype is None else tf.cast(value, dtype)


def _iou(box, boxes):
    """TFLite's ComputeIntersectionOverUnion of one box [4] with boxes [K, 4] (corners in any order)."""
    y_min_i, y_max_i = tf.minimum(box[0], box[2]), tf.maximum(box[0], box[2])
    x_min_i, x_max_i = tf.minimum(box[1], box[3]), tf.maximum(box[1], box[3])
    y_min_j, y_max_j = tf.minimum(boxes[:, 0], boxes[:, 2]), tf.maximum(boxes[:, 0], boxes[:, 2])
    x_min_j, x_max_j = tf.minimum(boxes[:, 1], boxes[:, 3]), tf.maximum(boxes[:, 1], boxes[:, 3])
    area_i = (y_max_i - y_min_i) * (x_max_i - x_min_i)
    area_j = (y_max_j - y_min_j) * (x_max_j - x_min_j)
    intersection = (tf.maximum(tf.minimum(y_max_i, y_max_j) - tf.maximum(y_min_i, y_min_j), 0.0) *
                    tf.maximum(tf.minimum(x_max_i, x_max_j) - tf.maximum(x_min_i, x_min_j), 0.0))
    iou = intersection / (area_i + area_j - intersection)
    return tf.where((area_i <= 0) | (area_j <= 0), tf.zeros_like(iou), iou)


def _first(mask, default):
    """Index of the first True in a vector, ``default`` if none."""
    positions = tf.where(mask, tf.range(tf.size(mask)), default)
    return tf.reduce_min(tf.concat([positions, [default]], 0))


# TFLite's candidates live in a std::priority_queue (a binary heap on a deque, ordered on the score
# alone). Which of several equal scores it pops first depends on the heap's layout, so the heap is
# replayed: push_heap and pop_heap as libstdc++ implements them (__push_heap, __adjust_heap).
# A heap is (index, score, suppress_begin, size); the arrays have room for every box.

def _set(array, position, value):
    return tf.tensor_scatter_nd_update(array, [[position]], [value])


def _sift_up(heap, hole, top, item):
    """libstdc++ __push_heap: move ``item`` up from ``hole`` while its parent's score is lower."""
    index, score, begin, size = heap

    def condition(hole, index, score, begin):
        return (hole > top) & (tf.gather(score, tf.maximum((hole - 1) // 2, 0)) < item[1])

    def body(hole, index, score, begin):
        parent = (hole - 1) // 2
        return (parent, _set(index, hole, index[parent]), _set(score, hole, score[parent]), _set(begin, hole, begin[parent]))

    hole, index, score, begin = tf.while_loop(condition, body, (hole, index, score, begin))
    return (_set(index, hole, item[0]), _set(score, hole, item[1]), _set(begin, hole, item[2]), size)


def _heap_push(heap, item):
    index, score, begin, size = heap
    heap = _sift_up((index, score, begin, size + 1), size, 0, item)
    return heap


def _heap_pop(heap):
    """libstdc++ pop_heap + pop_back: the last element fills the hole left by the top."""
    index, score, begin, size = heap
    length = size - 1
    value = (tf.gather(index, tf.maximum(length, 0)), tf.gather(score, tf.maximum(length, 0)),
             tf.gather(begin, tf.maximum(length, 0)))

    def adjust():
        def condition(hole, child, index, score, begin):
            return child < (length - 1) // 2

        def body(hole, child, index, score, begin):
            child = 2 * (child + 1)
            child = tf.where(score[child] < score[child - 1], child - 1, child)
            return (child, child, _set(index, hole, index[child]), _set(score, hole, score[child]),
                    _set(begin, hole, begin[child]))

        hole, child, i, s, b = tf.while_loop(condition, body, (tf.constant(0), tf.constant(0), index, score, begin))
        last_pair = tf.equal(length % 2, 0) & tf.equal(child, (length - 2) // 2)
        child = tf.where(last_pair, 2 * (child + 1), child)
        source = tf.maximum(child - 1, 0)
        i = tf.where(last_pair, _set(i, hole, i[source]), i)
        s = tf.where(last_pair, _set(s, hole, s[source]), s)
        b = tf.where(last_pair, _set(b, hole, b[source]), b)
        hole = tf.where(last_pair, child - 1, hole)
        return _sift_up((i, s, b, length), hole, 0, value)

    return tf.cond(length > 0, adjust, lambda: (index, score, begin, tf.maximum(length, 0)))


def tflite_non_max_suppression(boxes, scores, max_output_size, iou_threshold, score_threshold, sigma):
    """TFLite's NonMaxSuppression (soft NMS when sigma > 0): selected indices and scores padded with
    zeros to ``max_output_size``, and the number selected."""
    boxes = tf.cast(boxes, tf.float32)
    scores = tf.cast(scores, tf.float32)
    max_output_size = tf.cast(max_output_size, tf.int32)
    iou_threshold = tf.cast(iou_threshold, tf.float32)
    score_threshold = tf.cast(score_threshold, tf.float32)
    sigma = tf.cast(sigma, tf.float32)
    soft = sigma > 0.0
    # float scale = -0.5 / soft_nms_sigma: a double division stored as float.
    scale = tf.where(soft, tf.cast(-0.5 / tf.cast(tf.where(soft, sigma, 1.0), tf.float64), tf.float32), 0.0)
    count = tf.size(scores)
    candidates = tf.cast(tf.reshape(tf.where(scores > score_threshold), [-1]), tf.int32)
    outputs = tf.minimum(tf.size(candidates), max_output_size)
    steps = tf.range(max_output_size)

    def hard_distinct():
        """Hard NMS over distinct scores: the heap pops by decreasing score whatever its layout, and
        TensorFlow's greedy NMS, suppressing at iou > nextafter(t, -inf), is TFLite's at iou >= t.
        TFLite's re-push then decides what follows a selected box: with t <= 0 it is suppressed with
        everything else; a zero-area box (or any box, with t > 1) is selected again and again."""
        safe = tf.clip_by_value(tf.math.nextafter(iou_threshold, -np.inf), 0.0, 1.0)
        indices, valid = tf.raw_ops.NonMaxSuppressionV4(
            boxes=boxes, scores=scores, max_output_size=max_output_size, iou_threshold=safe,
            score_threshold=score_threshold, pad_to_max_output_size=True)
        positions = tf.range(max_output_size)
        picked = tf.gather(boxes, indices)
        area = ((tf.maximum(picked[:, 0], picked[:, 2]) - tf.minimum(picked[:, 0], picked[:, 2])) *
                (tf.maximum(picked[:, 1], picked[:, 3]) - tf.minimum(picked[:, 1], picked[:, 3])))
        repeats = (positions < valid) & ((area <= 0) | (iou_threshold > 1.0))
        first = _first(repeats, max_output_size)
        repeated = tf.gather(indices, tf.minimum(first, tf.maximum(max_output_size - 1, 0)))
        indices = tf.where(positions < first, indices, tf.where(positions < outputs, repeated, 0))
        valid = tf.where(first < max_output_size, outputs, valid)
        single = tf.minimum(outputs, 1)  # t <= 0: only the best box
        indices = tf.where(iou_threshold <= 0.0, tf.where(positions < single, indices, 0), indices)
        valid = tf.where(iou_threshold <= 0.0, single, valid)
        chosen = tf.where(positions < valid, tf.gather(scores, indices), 0.0)
        return indices, chosen, valid

    def replay_heap():
        empty = (tf.zeros([count], tf.int32), tf.zeros([count], tf.float32), tf.zeros([count], tf.int32), tf.constant(0))

        def build(k, *heap):
            box = candidates[k]
            return (k + 1, *_heap_push(heap, (box, scores[box], tf.constant(0))))

        _, *heap = tf.while_loop(lambda k, *_: k < tf.size(candidates), build, (tf.constant(0), *empty))

        def condition(heap_index, heap_score, heap_begin, size, selected, selected_scores, n):
            return (n < outputs) & (size > 0)

        def body(heap_index, heap_score, heap_begin, size, selected, selected_scores, n):
            candidate, original, start = heap_index[0], heap_score[0], heap_begin[0]
            heap = _heap_pop((heap_index, heap_score, heap_begin, size))
            # Previously selected boxes, newest first, down to the candidate's suppress_begin_index.
            order = n - 1 - steps
            visited = order >= start
            iou = _iou(boxes[candidate], tf.gather(boxes, tf.gather(selected, tf.maximum(order, 0))))
            hard = visited & (iou >= iou_threshold)
            weight = tf.where(visited & soft, tf.exp(scale * iou * iou), 1.0)
            decayed = tf.math.cumprod(tf.concat([[original], weight], 0))[1:]  # score after each step, in order
            low = visited & (decayed <= score_threshold)
            first_hard, first_low = _first(hard, max_output_size), _first(low, max_output_size)
            suppressed = first_hard < first_low  # the hard check comes first at each step
            last = tf.minimum(first_low, n - start - 1)
            score = tf.where(last >= 0, tf.gather(decayed, tf.maximum(last, 0)), original)
            take = ~suppressed & tf.equal(score, original)
            slot = tf.minimum(n, max_output_size - 1)
            selected = tf.where(take, _set(selected, slot, candidate), selected)
            selected_scores = tf.where(take, _set(selected_scores, slot, score), selected_scores)
            back = ~suppressed & (score > score_threshold)  # TFLite pushes it back even when just selected
            heap = tf.cond(back, lambda: _heap_push(heap, (candidate, score, n)), lambda: heap)
            return (*heap, selected, selected_scores, n + tf.cast(take, tf.int32))

        state = (*heap, tf.zeros([max_output_size], tf.int32), tf.zeros([max_output_size], tf.float32), tf.constant(0))
        *_, selected, selected_scores, n = tf.while_loop(condition, body, state)
        return selected, selected_scores, n

    ordered = tf.sort(tf.gather(scores, candidates))
    distinct = ~tf.reduce_any(tf.equal(ordered[1:], ordered[:-1]))
    return tf.cond(~soft & distinct & (max_output_size > 0), hard_distinct, replay_heap)


def _max_output_size(ctx, position, value):
    constant = ctx.constant(position)
    return int(np.asarray(constant).reshape(-1)[0]) if constant is not None else _scalar(value, tf.int32)


_SHAPE_NOTE = ("the converter may record the padded indices as [1, N]; TFLite's kernel makes them [N], "
               "as the builder does")


@register("NON_MAX_SUPPRESSION_V4", max_version=1, check_shape=False, note=_SHAPE_NOTE)
def build_non_max_suppression_v4(ctx, op, inputs):
    boxes, scores, max_output_size, iou_threshold, score_threshold = inputs[:5]
    indices, _, valid = tflite_non_max_suppression(boxes, scores, _max_output_size(ctx, 2, max_output_size),
                                                   _scalar(iou_threshold), _scalar(score_threshold), 0.0)
    return [indices, valid]


@register("NON_MAX_SUPPRESSION_V5", max_version=1, check_shape=False, note=_SHAPE_NOTE)
def build_non_max_suppression_v5(ctx, op, inputs):
    boxes, scores, max_output_size, iou_threshold, score_threshold, sigma = inputs[:6]
    indices, selected_scores, valid = tflite_non_max_suppression(
        boxes, scores, _max_output_size(ctx, 2, max_output_size), _scalar(iou_threshold), _scalar(score_threshold),
        _scalar(sigma))
    return [indices, selected_scores, valid]


# -- TFLite_Detection_PostProcess ------------------------------------------------------------------

def _flex_options(ctx, op) -> dict:
    if not op.custom_options:
        raise ctx.fail("TFLite_Detection_PostProcess has no custom options")
    root = flexbuffers.GetRoot(bytes(op.custom_options)).AsMap
    options = {}
    for key, value in zip(root.Keys, root.Values):
        name = key.AsKey if hasattr(key, "AsKey") else str(key)
        if isinstance(name, bytes):
            name = name.decode()
        if value.IsNull:
            continue
        if value.IsBool:
            options[name] = bool(value.AsBool)
        elif value.IsFloat:
            options[name] = float(value.AsFloat)
        elif value.IsInt or value.IsNumeric:
            options[name] = int(value.AsInt)
    required = ("max_detections", "max_classes_per_detection", "nms_score_threshold", "nms_iou_threshold",
                "num_classes", "y_scale", "x_scale", "h_scale", "w_scale")
    missing = [k for k in required if k not in options]
    if missing:
        raise ctx.fail(f"TFLite_Detection_PostProcess options lack {missing}")
    options.setdefault("detections_per_class", 100)
    options.setdefault("use_regular_nms", False)
    return options


def _decode_boxes(box_encodings, anchors, o):
    """Center-size encodings to corners, computed in double as TFLite does: [N, 4] (ymin, xmin, ymax, xmax)."""
    encodings = tf.cast(box_encodings[0, :, :4], tf.float64)
    anchors = tf.cast(anchors, tf.float64)
    scale = [float(np.float32(o[k])) for k in ("y_scale", "x_scale", "h_scale", "w_scale")]
    ay, ax, ah, aw = (anchors[:, i] for i in range(4))
    ycenter = tf.cast(encodings[:, 0] / scale[0] * ah + ay, tf.float32)
    xcenter = tf.cast(encodings[:, 1] / scale[1] * aw + ax, tf.float32)
    half_h = tf.cast(0.5 * tf.exp(encodings[:, 2] / scale[2]) * ah, tf.float32)
    half_w = tf.cast(0.5 * tf.exp(encodings[:, 3] / scale[3]) * aw, tf.float32)
    return tf.stack([ycenter - half_h, xcenter - half_w, ycenter + half_h, xcenter + half_w], axis=1)


def _single_class_nms(boxes, scores, max_detections: int, o):
    """TFLite's NonMaxSuppressionSingleClassHelper: keep scores >= threshold, visit them by decreasing
    score (stable: lower index first), drop a box when its IoU with a kept one is > threshold.
    Returns (indices padded to max_detections, number selected)."""
    if max_detections <= 0:
        return tf.zeros([0], tf.int32), tf.constant(0, tf.int32)
    score_threshold = np.nextafter(np.float32(o["nms_score_threshold"]), np.float32(-np.inf))
    indices, count = tf.raw_ops.NonMaxSuppressionV4(
        boxes=boxes, scores=scores, max_output_size=max_detections, iou_threshold=np.float32(o["nms_iou_threshold"]),
        score_threshold=score_threshold, pad_to_max_output_size=True)
    return indices, count


def _stable_descending(scores, valid):
    """Order of entries by decreasing score, ties in their current order, invalid entries last."""
    order = tf.argsort(tf.where(valid, scores, -np.inf), direction="DESCENDING", stable=True)
    order = tf.gather(order, tf.argsort(tf.cast(~tf.gather(valid, order), tf.int32), stable=True))
    return order


def _regular_nms(boxes, scores, o):
    """Per-class NMS, then the best ``max_detections`` over all classes (a stable merge: on equal
    scores the lower class, then the earlier selection, first); unused rows are zero."""
    num_classes = scores.shape[1]
    max_detections = int(o["max_detections"])
    per_class = min(int(o["detections_per_class"]), max_detections)
    if per_class <= 0:
        raise ValueError("detections_per_class must be positive")

    def one_class(class_scores):
        return _single_class_nms(boxes, class_scores, per_class, o)

    indices, counts = tf.map_fn(one_class, tf.transpose(scores), fn_output_signature=(
        tf.TensorSpec([per_class], tf.int32), tf.TensorSpec([], tf.int32)))
    valid = tf.range(per_class)[tf.newaxis, :] < counts[:, tf.newaxis]  # [classes, per_class]
    classes = tf.broadcast_to(tf.range(num_classes)[:, tf.newaxis], [num_classes, per_class])
    selected_scores = tf.gather(tf.transpose(scores), indices, batch_dims=1)
    flat = lambda t: tf.reshape(t, [-1])  # noqa: E731
    valid, indices, classes, selected_scores = flat(valid), flat(indices), flat(classes), flat(selected_scores)
    order = _stable_descending(selected_scores, valid)
    count = tf.minimum(tf.reduce_sum(tf.cast(valid, tf.int32)), max_detections)
    if max_detections > num_classes * per_class:
        order = tf.pad(order, [[0, max_detections - num_classes * per_class]])
    order = order[:max_detections]
    used = tf.range(max_detections) < count
    anchor = tf.gather(indices, order)
    out_boxes = tf.where(used[:, tf.newaxis], tf.gather(boxes, anchor), 0.0)
    out_classes = tf.where(used, tf.cast(tf.gather(classes, order), tf.float32), 0.0)
    out_scores = tf.where(used, tf.gather(selected_scores, order), 0.0)
    return out_boxes, out_classes, out_scores, count


def _fast_nms(boxes, scores, o):
    """Each box keeps its best ``max_classes_per_detection`` classes; one NMS on its best score.
    TFLite leaves the rows after the detections unwritten; they are zero here."""
    num_classes = scores.shape[1]
    max_detections = int(o["max_detections"])
    max_per_box = int(o["max_classes_per_detection"])
    if max_per_box <= 0:
        raise ValueError("max_classes_per_detection must be positive")
    per_box = min(max_per_box, num_classes)
    top_scores, top_classes = tf.math.top_k(scores, per_box)  # ties: lower class index first
    selected, count = _single_class_nms(boxes, top_scores[:, 0], max_detections, o)
    rows = tf.range(max_detections)
    used = rows < count
    positions = max_per_box * rows[:, tf.newaxis] + tf.range(per_box)[tf.newaxis, :]  # [max_detections, per_box]
    size = max_detections * max_per_box
    mask = tf.broadcast_to(used[:, tf.newaxis], [max_detections, per_box])
    positions = tf.boolean_mask(positions, mask)[:, tf.newaxis]

    def scatter(values):
        values = tf.boolean_mask(values, mask)
        return tf.scatter_nd(positions, values, tf.concat([[size], tf.shape(values)[1:]], 0))

    chosen_boxes = tf.broadcast_to(tf.gather(boxes, selected)[:, tf.newaxis, :], [max_detections, per_box, 4])
    out_boxes = scatter(chosen_boxes)
    out_classes = scatter(tf.cast(tf.gather(top_classes, selected), tf.float32))
    out_scores = scatter(tf.gather(top_scores, selected))
    return out_boxes, out_classes, out_scores, count


def _implements(o) -> str:
    """The ``experimental_implements`` of the wrapper function, whose attributes the converter's
    ``prepare_composite_functions_tf`` pass (ConvertSSDPostProcessFunc in
    tensorflow/compiler/mlir/lite/utils/nms_utils.cc) writes back as the op's flexbuffer options."""
    attributes = {key: int(o[key]) for key in _INT_OPTIONS}
    attributes.update({key: float(np.float32(o[key])) for key in _FLOAT_OPTIONS})
    attributes["use_regular_nms"] = bool(o["use_regular_nms"])
    attributes["detections_per_class"] = int(o["detections_per_class"])  # written for readers; the pass ignores it
    return implements("TFLite_Detection_PostProcess", attributes)


def fusable(o) -> bool:
    """Whether the converter's fused op computes what these options do. The pass never writes
    ``detections_per_class``, so the kernel takes its default, 100: the same selection when NMS is
    fast (it ignores the option) or both values reach ``max_detections`` (per-class NMS is greedy:
    selections past max_detections cannot enter the merged top max_detections)."""
    if not o["use_regular_nms"]:
        return True
    max_detections = int(o["max_detections"])
    return min(int(o["detections_per_class"]), max_detections) == min(_KERNEL_DETECTIONS_PER_CLASS, max_detections)


_KERNEL_DETECTIONS_PER_CLASS = 100  # kNumDetectionsPerClass in tflite/kernels/detection_postprocess.cc
_INT_OPTIONS = ("max_detections", "max_classes_per_detection", "num_classes")
_FLOAT_OPTIONS = ("nms_score_threshold", "nms_iou_threshold", "y_scale", "x_scale", "h_scale", "w_scale")


def _postprocess(box_encodings, class_predictions, anchors, o, label_offset):
    boxes = _decode_boxes(box_encodings, anchors, o)
    scores = tf.cast(class_predictions[0, :, label_offset:], tf.float32)
    if o["use_regular_nms"]:
        out_boxes, out_classes, out_scores, count = _regular_nms(boxes, scores, o)
        # The outputs hold max_detections * max_classes_per_detection rows whatever the mode;
        # regular NMS fills max_detections of them (TFLite leaves the others unwritten: zero here).
        extra = int(o["max_detections"]) * (int(o["max_classes_per_detection"]) - 1)
        if extra > 0:
            out_boxes = tf.pad(out_boxes, [[0, extra], [0, 0]])
            out_classes, out_scores = tf.pad(out_classes, [[0, extra]]), tf.pad(out_scores, [[0, extra]])
    else:
        out_boxes, out_classes, out_scores, count = _fast_nms(boxes, scores, o)
    return [out_boxes[tf.newaxis], out_classes[tf.newaxis], out_scores[tf.newaxis],
            tf.reshape(tf.cast(count, tf.float32), [1])]


@register_custom("TFLite_Detection_PostProcess", max_version=1,
                 note="regular and fast NMS; float or dequantized uint8 inputs; batch 1")
def build_detection_postprocess(ctx, op, inputs):
    o = _flex_options(ctx, op)
    box_encodings, class_predictions, anchors = inputs[:3]
    if class_predictions.shape.rank != 3 or class_predictions.shape[2] is None:
        raise ctx.fail("class predictions need a static shape [1, boxes, classes (+ background)]")
    num_classes = int(o["num_classes"])
    with_background = class_predictions.shape[2]
    label_offset = with_background - num_classes
    if label_offset not in (0, 1):
        raise ctx.fail(f"{with_background} class scores for num_classes={num_classes}")

    if not fusable(o):
        return _postprocess(box_encodings, class_predictions, anchors, o, label_offset)

    def postprocess(box_encodings, class_predictions, anchors):
        return _postprocess(box_encodings, class_predictions, anchors, o, label_offset)

    # A function of exactly three tensors (nothing captured) marked as implementing the custom op:
    # TFLiteConverter fuses it back into TFLite_Detection_PostProcess with these options.
    wrapper = tf.function(postprocess, autograph=False, experimental_implements=_implements(o))
    return list(wrapper(tf.convert_to_tensor(box_encodings), tf.convert_to_tensor(class_predictions),
                        tf.convert_to_tensor(anchors)))
