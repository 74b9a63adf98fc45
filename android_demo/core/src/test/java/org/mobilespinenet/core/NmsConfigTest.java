package org.mobilespinenet.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import org.junit.Test;

/** {@code NAME.nms.txt}, the settings android-assets writes beside a raw-output model. */
public class NmsConfigTest {
    private static NmsConfig read(String text) throws IOException {
        return NmsConfig.read(new ByteArrayInputStream(text.getBytes(StandardCharsets.UTF_8)));
    }

    @Test
    public void readsEveryKeyTheKitWrites() throws IOException {
        NmsConfig c = read("score_threshold 0.3\niou_threshold 0.6\nmax_detections 10\npre_nms_top_k 50\nclip_size 128\n");
        assertEquals(0.3f, c.scoreThreshold, 0f);
        assertEquals(0.6f, c.iouThreshold, 0f);
        assertEquals(10, c.maxDetections);
        assertEquals(50, c.preNmsTopK);
        assertEquals(128, c.clipSize);
    }

    @Test
    public void missingKeysKeepTheDefaults() throws IOException {
        NmsConfig c = read("# a comment\n\nclip_size 0\n");
        NmsConfig d = NmsConfig.defaults();
        assertEquals(d.scoreThreshold, c.scoreThreshold, 0f);
        assertEquals(d.preNmsTopK, c.preNmsTopK);
        assertEquals(0, c.clipSize);
    }

    @Test
    public void badLinesAreErrorsNamingWhatIsWrong() {
        String[][] cases = {{"clip_size\n", "line 1"}, {"clip_size big\n", "big"}, {"clip_size -1\n", "clip_size"},
            {"nms_magic 3\n", "nms_magic"}};
        for (String[] c : cases) {
            try {
                read(c[0]);
                fail("accepted " + c[0]);
            } catch (IOException e) {
                assertTrue(e.getMessage() + " should name " + c[1], e.getMessage().contains(c[1]));
            }
        }
    }
}
