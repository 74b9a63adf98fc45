package org.mobilespinenet.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.Arrays;
import java.util.List;
import org.junit.Test;

public class DetectionDecoderTest {
    private static final Labels LABELS = new Labels(Arrays.asList("shirt", "sneaker", "bag"));

    private static final float[][] LOCATION = {
            {0.1f, 0.2f, 0.5f, 0.6f}, {0.0f, 0.0f, 1.0f, 1.0f}, {0.3f, 0.3f, 0.4f, 0.4f}, {0f, 0f, 0f, 0f}};
    private static final float[] CATEGORY = {2f, 0f, 1f, 0f};
    private static final float[] SCORE = {0.9f, 0.45f, 0.2f, 0f};

    @Test
    public void scoresBelowTheThresholdAreDropped() {
        List<Detection> kept = DetectionDecoder.fromPostProcessed(LOCATION, CATEGORY, SCORE, 3f, 0.3f, LABELS);
        assertEquals(2, kept.size());
        assertEquals("bag", kept.get(0).label);
        assertEquals("shirt", kept.get(1).label);
        Box box = kept.get(0).box;  // (ymin, xmin, ymax, xmax) -> (left, top, right, bottom)
        assertEquals(0.2f, box.left, 0f);
        assertEquals(0.1f, box.top, 0f);
        assertEquals(0.6f, box.right, 0f);
        assertEquals(0.5f, box.bottom, 0f);
    }

    @Test
    public void onlyTheCountedRowsAreRead() {
        assertEquals(1, DetectionDecoder.fromPostProcessed(LOCATION, CATEGORY, SCORE, 1f, 0f, LABELS).size());
        assertEquals(3, DetectionDecoder.fromPostProcessed(LOCATION, CATEGORY, SCORE, 3f, 0f, LABELS).size());
        assertEquals(4, DetectionDecoder.fromPostProcessed(LOCATION, CATEGORY, SCORE, 99f, 0f, LABELS).size());
    }

    @Test
    public void noDetectionsGiveAnEmptyList() {
        assertTrue(DetectionDecoder.fromPostProcessed(LOCATION, CATEGORY, SCORE, 0f, 0f, LABELS).isEmpty());
        assertTrue(DetectionDecoder.fromPostProcessed(new float[0][4], new float[0], new float[0], 0f, 0f, LABELS)
                .isEmpty());
        assertTrue(DetectionDecoder.fromRawOutputs(new float[][] {{-20f, -20f}}, new float[][] {{0f, 0f, 0f, 0f}},
                new float[][] {{0f, 0f, 8f, 8f}}, 8, NmsConfig.defaults(), LABELS).isEmpty());
    }

    @Test
    public void preNmsTopKLimitsTheCandidatesBeforeNms() {
        // one class, three anchors: A (best) and B overlap, C stands apart and scores lowest
        float[][] anchors = {{0f, 0f, 10f, 10f}, {0f, 1f, 10f, 11f}, {20f, 20f, 30f, 30f}};
        float[][] codes = new float[3][4];
        float[][] logits = {{3f}, {2f}, {1f}};
        Labels one = new Labels(Arrays.asList("shirt"));
        // top 2: A and B enter NMS, B is suppressed, C never was a candidate
        List<Detection> two = DetectionDecoder.fromRawOutputs(logits, codes, anchors, 32,
                new NmsConfig(0.05f, 0.5f, 100, 2), one);
        assertEquals(1, two.size());
        assertEquals(DetectionDecoder.sigmoid(3f), two.get(0).score, 0f);
        // top 3: C is a candidate too and survives NMS (a cap after NMS would have kept A and C at 2)
        List<Detection> three = DetectionDecoder.fromRawOutputs(logits, codes, anchors, 32,
                new NmsConfig(0.05f, 0.5f, 100, 3), one);
        assertEquals(2, three.size());
        assertEquals(DetectionDecoder.sigmoid(1f), three.get(1).score, 0f);
    }

    @Test
    public void wildSizeCodesAreClampedLikeThePythonCoder() {
        Box box = DetectionDecoder.decode(new float[] {0f, 0f, 500f, 500f}, new float[] {0f, 0f, 16f, 16f});
        assertTrue(Float.isFinite(box.right) && Float.isFinite(box.bottom));
        assertEquals(1000f, box.right - box.left, 0.01f);  // 16 * 1000 / 16
    }

    @Test
    public void unknownClassIndicesGetAPlaceholderLabel() {
        List<Detection> kept = DetectionDecoder.fromPostProcessed(new float[][] {{0f, 0f, 1f, 1f}}, new float[] {7f},
                new float[] {0.8f}, 1f, 0.5f, LABELS);
        assertEquals("class 7", kept.get(0).label);
    }

    @Test
    public void nmsKeepsTheBestOfOverlappingBoxesPerClass() {
        float[][] anchors = {{0f, 0f, 10f, 10f}, {0f, 1f, 10f, 11f}, {0f, 0f, 10f, 10f}};
        float[][] codes = new float[3][4];
        float[][] logits = {{3f, -9f}, {2f, -9f}, {-9f, 1f}};  // two overlapping class-0 boxes, one class-1 box
        List<Detection> kept = DetectionDecoder.fromRawOutputs(logits, codes, anchors, 10, NmsConfig.defaults(), LABELS);
        assertEquals(2, kept.size());
        assertEquals(0, kept.get(0).classIndex);
        assertEquals(1, kept.get(1).classIndex);  // other classes never suppress each other
        assertEquals(1.0f, kept.get(0).box.right, 1e-6f);
    }

    @Test(expected = IllegalArgumentException.class)
    public void outputsOfDifferentLengthsAreRefused() {
        DetectionDecoder.fromRawOutputs(new float[2][3], new float[3][4], new float[3][4], 8, NmsConfig.defaults(),
                LABELS);
    }
}
