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
 * The core decodes raw outputs exactly as the Python kit does: the fixture holds random logits
 * and box codes on real anchors, and the detections of {@code mobile_spinenet.postprocess.detect}
 * plus their frame boxes (written by tests/test_android_core.py).
 */
public class GoldenPostprocessTest {
    private static final float TOLERANCE = 1e-4f;

    private static final class Fixture {
        int inputSize;
        int frameWidth;
        int frameHeight;
        NmsConfig nms;
        float[][] anchors;
        float[][] logits;
        float[][] codes;
        float[][] detections; // class, score, ymin, xmin, ymax, xmax (normalised)
        float[][] frameBoxes; // ymin, xmin, ymax, xmax (frame pixels)
    }

    private static Fixture load() throws IOException {
        InputStream stream = GoldenPostprocessTest.class.getResourceAsStream("/golden_postprocess.txt");
        assertTrue("golden_postprocess.txt is not on the test classpath", stream != null);
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
        field(lines, at, "num_classes");
        String[] frame = field(lines, at, "frame");
        f.frameWidth = Integer.parseInt(frame[0]);
        f.frameHeight = Integer.parseInt(frame[1]);
        String[] nms = field(lines, at, "nms");
        f.nms = new NmsConfig(Float.parseFloat(nms[0]), Float.parseFloat(nms[1]), Integer.parseInt(nms[2]),
                Integer.parseInt(nms[3]));
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

    @Test
    public void rawOutputsDecodeToThePythonKitsDetections() throws IOException {
        Fixture f = load();
        List<Detection> got = DetectionDecoder.fromRawOutputs(f.logits, f.codes, f.anchors, f.inputSize, f.nms,
                new Labels(Arrays.asList("a", "b", "c")));
        assertEquals("detection count", f.detections.length, got.size());
        for (int i = 0; i < got.size(); i++) {
            float[] want = f.detections[i];
            Detection d = got.get(i);
            assertEquals("class of detection " + i, (int) want[0], d.classIndex);
            assertEquals("score of detection " + i, want[1], d.score, TOLERANCE);
            assertEquals("ymin of detection " + i, want[2], d.box.top, TOLERANCE);
            assertEquals("xmin of detection " + i, want[3], d.box.left, TOLERANCE);
            assertEquals("ymax of detection " + i, want[4], d.box.bottom, TOLERANCE);
            assertEquals("xmax of detection " + i, want[5], d.box.right, TOLERANCE);
        }
    }

    @Test
    public void framePixelsMatchThePythonKitsLetterboxUndo() throws IOException {
        Fixture f = load();
        Letterbox letterbox = Letterbox.forUpright(f.frameWidth, f.frameHeight, f.inputSize);
        for (int i = 0; i < f.detections.length; i++) {
            float[] d = f.detections[i];
            Box frame = letterbox.toFrame(Box.fromYxyx(d[2], d[3], d[4], d[5]));
            float[] want = f.frameBoxes[i];
            assertEquals("frame top " + i, want[0], frame.top, 1e-3f);
            assertEquals("frame left " + i, want[1], frame.left, 1e-3f);
            assertEquals("frame bottom " + i, want[2], frame.bottom, 1e-3f);
            assertEquals("frame right " + i, want[3], frame.right, 1e-3f);
        }
    }
}
