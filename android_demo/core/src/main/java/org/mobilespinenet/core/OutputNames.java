package org.mobilespinenet.core;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Finds a model's outputs by tensor name, never by position. The kit's exports name them (in the
 * TFLite metadata and as tensor names): {@code location}, {@code category}, {@code score},
 * {@code number of detections} with the in-graph post-processing, or {@code boxes} and
 * {@code classes} (raw box codes and class logits) with {@code --nms none}.
 */
public final class OutputNames {
    public static final String LOCATION = "location";
    public static final String CATEGORY = "category";
    public static final String SCORE = "score";
    public static final String COUNT = "number of detections";
    public static final String RAW_BOXES = "boxes";
    public static final String RAW_CLASSES = "classes";

    private static final String[] POSTPROCESSED = {LOCATION, CATEGORY, SCORE, COUNT};
    private static final String[] RAW = {RAW_BOXES, RAW_CLASSES};

    private final Map<String, Integer> indexByName;
    public final boolean postProcessed;

    private OutputNames(Map<String, Integer> indexByName, boolean postProcessed) {
        this.indexByName = indexByName;
        this.postProcessed = postProcessed;
    }

    /**
     * Resolves the output indices from the interpreter's output tensor names (in its order).
     *
     * @throws IllegalArgumentException naming the missing outputs and the names the model has
     */
    public static OutputNames resolve(List<String> tensorNames) {
        Map<String, Integer> byName = new HashMap<>();
        for (int i = 0; i < tensorNames.size(); i++) {
            byName.put(tensorNames.get(i), i);
        }
        List<String> missingPost = missing(byName, POSTPROCESSED);
        if (missingPost.isEmpty()) {
            return new OutputNames(byName, true);
        }
        if (missing(byName, RAW).isEmpty()) {
            return new OutputNames(byName, false);
        }
        throw new IllegalArgumentException("the model has outputs " + tensorNames + "; expected "
                + String.join(", ", POSTPROCESSED) + " (export with --nms tflite) or boxes, classes"
                + " (--nms none); missing " + missingPost);
    }

    private static List<String> missing(Map<String, Integer> byName, String[] wanted) {
        List<String> out = new ArrayList<>();
        for (String name : wanted) {
            if (!byName.containsKey(name)) {
                out.add(name);
            }
        }
        return out;
    }

    /** The output index of {@code name}. */
    public int indexOf(String name) {
        Integer index = indexByName.get(name);
        if (index == null) {
            throw new IllegalArgumentException("the model has no output named '" + name + "'");
        }
        return index;
    }
}
