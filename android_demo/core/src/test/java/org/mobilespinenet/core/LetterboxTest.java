package org.mobilespinenet.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import org.junit.Test;

public class LetterboxTest {
    @Test
    public void landscapeFramePadsAtTheBottom() {
        Letterbox box = Letterbox.forCameraFrame(640, 480, 0, 320);
        assertFalse(box.isPortrait());
        assertEquals(0.5f, box.scale, 0f);
        assertEquals(320, box.contentWidth);
        assertEquals(240, box.contentHeight);
        // the lower quarter of the input is padding: a box there maps below the frame and is clipped
        Box frame = box.toFrame(new Box(0.25f, 0.5f, 0.75f, 0.9f));
        assertEquals(160f, frame.left, 1e-4f);
        assertEquals(320f, frame.top, 1e-4f);
        assertEquals(480f, frame.right, 1e-4f);
        assertEquals(480f, frame.bottom, 1e-4f);  // 0.9 * 640 = 576 clipped to the 480 px frame
    }

    @Test
    public void portraitFrameFromARotatedSensorPadsOnTheRight() {
        Letterbox box = Letterbox.forCameraFrame(640, 480, 90, 320);  // sensor landscape, phone upright
        assertTrue(box.isPortrait());
        assertEquals(480, box.frameWidth);
        assertEquals(640, box.frameHeight);
        assertEquals(240, box.contentWidth);
        assertEquals(320, box.contentHeight);
        Box frame = box.toFrame(new Box(0.5f, 0.25f, 0.9f, 0.5f));
        assertEquals(320f, frame.left, 1e-4f);
        assertEquals(160f, frame.top, 1e-4f);
        assertEquals(480f, frame.right, 1e-4f);  // into the right padding: clipped
        assertEquals(320f, frame.bottom, 1e-4f);
    }

    @Test
    public void rotation270AlsoSwapsAndOddAnglesAreRefused() {
        assertTrue(Letterbox.forCameraFrame(640, 480, 270, 256).isPortrait());
        assertFalse(Letterbox.forCameraFrame(640, 480, 180, 256).isPortrait());
        try {
            Letterbox.forCameraFrame(640, 480, 45, 256);
            org.junit.Assert.fail("45 degrees accepted");
        } catch (IllegalArgumentException expected) {
            assertTrue(expected.getMessage().contains("45"));
        }
    }

    @Test
    public void inputIsNormalisedAndZeroPadded() {
        Letterbox box = Letterbox.forUpright(4, 2, 4);  // content 4x2, padding rows 2..3
        int[] argb = new int[8];
        java.util.Arrays.fill(argb, 0xFFFF0080);  // r 255, g 0, b 128
        float[] input = new float[4 * 4 * 3];
        box.fillFloatInput(argb, input);
        assertEquals(1f, input[0], 1e-6f);
        assertEquals(-1f, input[1], 1e-6f);
        assertEquals(128 / 127.5f - 1f, input[2], 1e-6f);
        assertEquals(0f, input[(2 * 4 + 1) * 3], 0f);  // row 2 is padding
        byte[] bytes = new byte[4 * 4 * 3];
        box.fillUint8Input(argb, bytes);
        assertEquals(255, bytes[0] & 0xff);
        assertEquals(128, bytes[(3 * 4 + 3) * 3] & 0xff);
    }

    @Test
    public void viewMappingFillsOrFitsThePreview() {
        // a 480x640 upright frame in a 1080x1920 portrait view: FILL scales by 2.25 and crops the width
        ViewMapper fill = new ViewMapper(480, 640, 1080, 1920, ViewMapper.Mode.FILL);
        assertEquals(3f, fill.scale, 1e-6f);
        assertEquals((1080 - 1440) / 2f, fill.offsetX, 1e-4f);
        Box view = fill.toView(new Box(100f, 200f, 300f, 400f));
        assertEquals(100f * 3 - 180f, view.left, 1e-3f);
        assertEquals(600f, view.top, 1e-3f);
        ViewMapper fit = new ViewMapper(640, 480, 1080, 1920, ViewMapper.Mode.FIT);  // landscape in portrait
        assertEquals(1080f / 640f, fit.scale, 1e-6f);
        assertEquals(0f, fit.offsetX, 1e-4f);
        assertEquals((1920 - 480 * 1080f / 640f) / 2f, fit.offsetY, 1e-3f);
    }
}
