package org.mobilespinenet.core;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Turns a model's outputs into detections with boxes normalised to the model's square input
 * ([0, 1], (left, top, right, bottom)). Two kinds of file:
 * <ul>
 *   <li>in-graph post-processing ({@code TFLite_Detection_PostProcess}): read the outputs and
 *       keep those above the score threshold;</li>
 *   <li>raw outputs ({@code --nms none}): decode box codes against the anchors, sigmoid the class
 *       logits, and run per-class NMS exactly as the Python kit's {@code postprocess.detect}.</li>
 * </ul>
 */
public final class DetectionDecoder {
    private DetectionDecoder() {
    }

    /**
     * Detections of a post-processed file above {@code minScore}, in the file's (score) order.
     *
     * @param location [D][4] boxes as normalised (ymin, xmin, ymax, xmax)
     * @param category [D] class indices (as floats, as the op writes them)
     * @param score    [D] scores
     * @param count    the op's "number of detections"
     */
    public static List<Detection> fromPostProcessed(float[][] location, float[] category, float[] score, float count,
                                                    float minScore, Labels labels) {
        int n = Math.max(0, Math.min((int) count, Math.min(location.length, score.length)));
        List<Detection> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            if (score[i] < minScore) {
                continue;
            }
            int cls = Math.round(category[i]);
            float[] b = location[i];
            out.add(new Detection(cls, labels.get(cls), score[i], Box.fromYxyx(b[0], b[1], b[2], b[3])));
        }
        return out;
    }

    /**
     * Detections of a raw-output file: box codes (ty, tx, th, tw) against anchors in input pixels
     * (ymin, xmin, ymax, xmax), boxes clipped to [0, {@code nms.clipSize}] when it is set, sigmoid
     * scores; each class's {@code preNmsTopK} best anchors above
     * the score threshold enter its NMS, which keeps up to {@code maxDetections}; the best
     * {@code maxDetections} overall by score, boxes normalised by {@code inputSize}.
     */
    public static List<Detection> fromRawOutputs(float[][] classLogits, float[][] boxCodes, float[][] anchors,
                                                 int inputSize, NmsConfig nms, Labels labels) {
        if (classLogits.length != boxCodes.length || boxCodes.length != anchors.length) {
            throw new IllegalArgumentException("outputs disagree on the anchor count: classes " + classLogits.length
                    + ", boxes " + boxCodes.length + ", anchors " + anchors.length);
        }
        Box[] boxes = new Box[anchors.length];
        for (int i = 0; i < anchors.length; i++) {
            boxes[i] = decode(boxCodes[i], anchors[i]);
            if (nms.clipSize > 0) {
                boxes[i] = boxes[i].clipped(nms.clipSize, nms.clipSize);
            }
        }
        int numClasses = classLogits.length == 0 ? 0 : classLogits[0].length;
        List<Detection> all = new ArrayList<>();
        for (int c = 0; c < numClasses; c++) {
            List<Detection> candidates = new ArrayList<>();
            for (int i = 0; i < boxes.length; i++) {
                float s = sigmoid(classLogits[i][c]);
                if (s > nms.scoreThreshold) {
                    candidates.add(new Detection(c, labels.get(c), s, boxes[i]));
                }
            }
            candidates.sort(BY_SCORE);  // stable: equal scores keep anchor order, as TensorFlow's top_k
            List<Detection> best = candidates.subList(0, Math.min(candidates.size(), nms.preNmsTopK));
            all.addAll(greedyNms(new ArrayList<>(best), nms.iouThreshold, nms.maxDetections));
        }
        all.sort(BY_SCORE);
        List<Detection> kept = all.subList(0, Math.min(all.size(), nms.maxDetections));
        List<Detection> out = new ArrayList<>(kept.size());
        float inv = 1f / inputSize;
        for (Detection d : kept) {
            out.add(d.withBox(d.box.scaled(inv, inv)));
        }
        return out;
    }

    private static final Comparator<Detection> BY_SCORE = (a, b) -> Float.compare(b.score, a.score);

    /** Highest score first; drop a box whose IoU with a kept one exceeds {@code iouThreshold}. */
    static List<Detection> greedyNms(List<Detection> candidates, float iouThreshold, int maxKept) {
        candidates.sort(BY_SCORE);
        List<Detection> kept = new ArrayList<>();
        for (Detection d : candidates) {
            if (kept.size() >= maxKept) {
                break;
            }
            boolean suppressed = false;
            for (Detection k : kept) {
                if (k.box.iou(d.box) > iouThreshold) {
                    suppressed = true;
                    break;
                }
            }
            if (!suppressed) {
                kept.add(d);
            }
        }
        return kept;
    }

    /** Size codes are clamped before exp, as {@code box_coder.MAX_LOG_SCALE}: log(1000 / 16). */
    static final double MAX_LOG_SCALE = Math.log(1000.0 / 16.0);

    /** The kit's box coder ({@code box_coder.decode}, scale factors 1): a box in input pixels. */
    static Box decode(float[] code, float[] anchor) {
        float ha = anchor[2] - anchor[0];
        float wa = anchor[3] - anchor[1];
        float ya = anchor[0] + 0.5f * ha;
        float xa = anchor[1] + 0.5f * wa;
        float yc = code[0] * ha + ya;
        float xc = code[1] * wa + xa;
        float h = (float) Math.exp(Math.min(code[2], MAX_LOG_SCALE)) * ha;
        float w = (float) Math.exp(Math.min(code[3], MAX_LOG_SCALE)) * wa;
        return Box.fromYxyx(yc - h / 2f, xc - w / 2f, yc + h / 2f, xc + w / 2f);
    }

    static float sigmoid(float x) {
        return (float) (1.0 / (1.0 + Math.exp(-x)));
    }
}
