package org.mobilespinenet.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.Test;

/**
 * The core decodes raw outputs exactly as the Python kit does. Two fixtures, written by
 * tests/test_android_core.py: random logits and box codes on the kit's RetinaNet anchors
 * ({@code golden_postprocess.txt}), and the raw outputs of a SpineNet-49XS imported from a Model
 * Garden checkpoint, on its anchors (anchor size 3) with boxes clipped before NMS as Model
 * Garden's detection generator does ({@code golden_imported.txt}, whose detections the Python
 * test also checks against that generator). Each holds the detections of
 * {@code mobile_spinenet.postprocess.detect} plus their frame boxes.
 */
public class GoldenPostprocessTest {
    private static final float TOLERANCE = 1e-4f;

    private static final class Fixture {
        int inputSize;
        int numClasses;
        int frameWidth;
        int frameHeight;
        NmsConfig nms;
        float[][] anchors;
        float[][] logits;
        float[][] codes;
        float[][] detections; // class, score, ymin, xmin, ymax, xmax (normalised)
        float[][] frameBoxes; // ymin, xmin, ymax, xmax (frame pixels)
    }

    private static final String[] FIXTURES = {"golden_postprocess.txt", "golden_imported.txt"};

    private static Fixture load(String name) throws IOException {
        InputStream stream = GoldenPostprocessTest.class.getResourceAsStream("/" + name);
        assertTrue(name + " is not on the test classpath", stream != null);
        List<String> lines = new ArrayList<>();
        try (BufferedReader reader = new BufferedReader(new InputStreamReader(stream, StandardCharsets.UTF_8))) {
            String line;
            while ((line = reader.readLine()) != null) {
                if (!line.startsWith("#")) {
                    lines.add(line);
                }
            }
        }
        Fixture f = new Fixture();
        int[] at = {0};
        f.inputSize = Integer.parseInt(field(lines, at, "input_size")[0]);
        f.numClasses = Integer.parseInt(field(lines, at, "num_classes")[0]);
        String[] frame = field(lines, at, "frame");
        f.frameWidth = Integer.parseInt(frame[0]);
        f.frameHeight = Integer.parseInt(frame[1]);
        String[] nms = field(lines, at, "nms");
        f.nms = new NmsConfig(Float.parseFloat(nms[0]), Float.parseFloat(nms[1]), Integer.parseInt(nms[2]),
                Integer.parseInt(nms[3]), Integer.parseInt(nms[4]));
        f.anchors = block(lines, at, "anchors");
        f.logits = block(lines, at, "logits");
        f.codes = block(lines, at, "codes");
        f.detections = block(lines, at, "detections");
        f.frameBoxes = block(lines, at, "frame_boxes");
        return f;
    }

    private static String[] field(List<String> lines, int[] at, String name) {
        String[] parts = lines.get(at[0]++).split(" ");
        assertEquals(name, parts[0]);
        return Arrays.copyOfRange(parts, 1, parts.length);
    }

    private static float[][] block(List<String> lines, int[] at, String name) {
        int rows = Integer.parseInt(field(lines, at, name)[0]);
        float[][] out = new float[rows][];
        for (int r = 0; r < rows; r++) {
            String[] parts = lines.get(at[0]++).trim().split(" ");
            out[r] = new float[parts.length];
            for (int i = 0; i < parts.length; i++) {
                out[r][i] = Float.parseFloat(parts[i]);
            }
        }
        return out;
    }

    private static List<Detection> decode(Fixture f, NmsConfig nms) {
        List<String> names = new ArrayList<>();
        for (int c = 0; c < f.numClasses; c++) {
            names.add("class" + c);
        }
        return DetectionDecoder.fromRawOutputs(f.logits, f.codes, f.anchors, f.inputSize, nms, new Labels(names));
    }

    @Test
    public void rawOutputsDecodeToThePythonKitsDetections() throws IOException {
        for (String name : FIXTURES) {
            Fixture f = load(name);
            List<Detection> got = decode(f, f.nms);
            assertEquals(name + ": detection count", f.detections.length, got.size());
            for (int i = 0; i < got.size(); i++) {
                float[] want = f.detections[i];
                Detection d = got.get(i);
                String what = name + ", detection " + i;
                assertEquals("class of " + what, (int) want[0], d.classIndex);
                assertEquals("score of " + what, want[1], d.score, TOLERANCE);
                assertEquals("ymin of " + what, want[2], d.box.top, TOLERANCE);
                assertEquals("xmin of " + what, want[3], d.box.left, TOLERANCE);
                assertEquals("ymax of " + what, want[4], d.box.bottom, TOLERANCE);
                assertEquals("xmax of " + what, want[5], d.box.right, TOLERANCE);
            }
        }
    }

    @Test
    public void theImportedModelsFixtureNeedsTheClipBeforeNms() throws IOException {
        Fixture f = load("golden_imported.txt");
        assertTrue("the imported fixture clips at its input size", f.nms.clipSize == f.inputSize);
        List<Detection> unclipped = decode(f, new NmsConfig(f.nms.scoreThreshold, f.nms.iouThreshold,
                f.nms.maxDetections, f.nms.preNmsTopK, 0));
        boolean differs = unclipped.size() != f.detections.length;
        for (int i = 0; !differs && i < unclipped.size(); i++) {
            Box b = unclipped.get(i).box;
            float[] want = f.detections[i];
            differs = Math.abs(b.top - want[2]) > TOLERANCE || Math.abs(b.left - want[3]) > TOLERANCE
                    || Math.abs(b.bottom - want[4]) > TOLERANCE || Math.abs(b.right - want[5]) > TOLERANCE;
        }
        assertTrue("without the clip the detections should differ (the fixture would not test it)", differs);
    }

    @Test
    public void framePixelsMatchThePythonKitsLetterboxUndo() throws IOException {
        for (String name : FIXTURES) {
            Fixture f = load(name);
            Letterbox letterbox = Letterbox.forUpright(f.frameWidth, f.frameHeight, f.inputSize);
            for (int i = 0; i < f.detections.length; i++) {
                float[] d = f.detections[i];
                Box frame = letterbox.toFrame(Box.fromYxyx(d[2], d[3], d[4], d[5]));
                float[] want = f.frameBoxes[i];
                assertEquals(name + ": frame top " + i, want[0], frame.top, 1e-3f);
                assertEquals(name + ": frame left " + i, want[1], frame.left, 1e-3f);
                assertEquals(name + ": frame bottom " + i, want[2], frame.bottom, 1e-3f);
                assertEquals(name + ": frame right " + i, want[3], frame.right, 1e-3f);
            }
        }
    }
}
