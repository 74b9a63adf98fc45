package org.mobilespinenet.core;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

/**
 * Post-processing settings; the defaults are the kit's ({@code mobile_spinenet.postprocess.NMSConfig}).
 * {@code clipSize} &gt; 0 clips decoded boxes to [0, clipSize] input pixels before NMS, as Model
 * Garden's detection generator does (runs imported with {@code mobile-spinenet import model-garden});
 * 0 leaves them unclipped (the kit's own runs).
 */
public final class NmsConfig {
    public final float scoreThreshold;
    public final float iouThreshold;
    public final int maxDetections;
    public final int preNmsTopK;
    public final int clipSize;

    public NmsConfig(float scoreThreshold, float iouThreshold, int maxDetections, int preNmsTopK, int clipSize) {
        if (clipSize < 0) {
            throw new IllegalArgumentException("clip_size must be 0 (no clipping) or positive, got " + clipSize);
        }
        this.scoreThreshold = scoreThreshold;
        this.iouThreshold = iouThreshold;
        this.maxDetections = maxDetections;
        this.preNmsTopK = preNmsTopK;
        this.clipSize = clipSize;
    }

    public NmsConfig(float scoreThreshold, float iouThreshold, int maxDetections, int preNmsTopK) {
        this(scoreThreshold, iouThreshold, maxDetections, preNmsTopK, 0);
    }

    public static NmsConfig defaults() {
        return new NmsConfig(0.05f, 0.5f, 100, 1000, 0);
    }

    /**
     * The settings file {@code mobile-spinenet android-assets} writes beside a raw-output model
     * ({@code NAME.nms.txt}): "key value" lines, keys as in the kit's NMSConfig
     * ({@code score_threshold}, {@code iou_threshold}, {@code max_detections}, {@code pre_nms_top_k},
     * {@code clip_size}); a key left out keeps its default, an unknown one is an error.
     */
    public static NmsConfig read(InputStream stream) throws IOException {
        NmsConfig d = defaults();
        Map<String, String> values = new HashMap<>();
        try (BufferedReader reader = new BufferedReader(new InputStreamReader(stream, StandardCharsets.UTF_8))) {
            String line;
            int number = 0;
            while ((line = reader.readLine()) != null) {
                number++;
                String text = line.trim();
                if (text.isEmpty() || text.startsWith("#")) {
                    continue;
                }
                String[] parts = text.split("\\s+");
                if (parts.length != 2) {
                    throw new IOException("nms settings line " + number + ": expected 'key value', got '" + line + "'");
                }
                values.put(parts[0], parts[1]);
            }
        }
        try {
            NmsConfig config = new NmsConfig(
                    Float.parseFloat(values.getOrDefault("score_threshold", String.valueOf(d.scoreThreshold))),
                    Float.parseFloat(values.getOrDefault("iou_threshold", String.valueOf(d.iouThreshold))),
                    Integer.parseInt(values.getOrDefault("max_detections", String.valueOf(d.maxDetections))),
                    Integer.parseInt(values.getOrDefault("pre_nms_top_k", String.valueOf(d.preNmsTopK))),
                    Integer.parseInt(values.getOrDefault("clip_size", "0")));
            values.keySet().removeAll(java.util.Arrays.asList(
                    "score_threshold", "iou_threshold", "max_detections", "pre_nms_top_k", "clip_size"));
            if (!values.isEmpty()) {
                throw new IOException("nms settings: unknown key(s) " + values.keySet());
            }
            return config;
        } catch (IllegalArgumentException e) { // NumberFormatException too
            throw new IOException("nms settings: " + e.getMessage(), e);
        }
    }
}
