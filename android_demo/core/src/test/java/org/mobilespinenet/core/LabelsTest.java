package org.mobilespinenet.core;

import static org.junit.Assert.assertEquals;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import org.junit.Test;

public class LabelsTest {
    @Test
    public void labelsFileIsReadInClassOrder() throws IOException {
        Labels labels = Labels.read(new ByteArrayInputStream("T-shirt/top\nTrouser\n\nAnkle boot\n"
                .getBytes(StandardCharsets.UTF_8)));
        assertEquals(3, labels.size());
        assertEquals("T-shirt/top", labels.get(0));
        assertEquals("Ankle boot", labels.get(2));
        assertEquals("class 3", labels.get(3));
        assertEquals("class -1", labels.get(-1));
    }

    @Test
    public void anchorsFileIsParsedAndBadLinesNamed() throws IOException {
        float[][] anchors = Anchors.read(new ByteArrayInputStream("0 0 8 8\n4 4 12 12\n".getBytes(StandardCharsets.UTF_8)));
        assertEquals(2, anchors.length);
        assertEquals(12f, anchors[1][3], 0f);
        try {
            Anchors.read(new ByteArrayInputStream("0 0 8\n".getBytes(StandardCharsets.UTF_8)));
            org.junit.Assert.fail("a 3-number line was accepted");
        } catch (IOException e) {
            assertEquals(true, e.getMessage().contains("line 1"));
        }
    }
}
