package org.mobilespinenet.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Arrays;
import org.junit.Test;

public class OutputNamesTest {
    @Test
    public void postProcessedOutputsAreFoundByNameInAnyOrder() {
        OutputNames a = OutputNames.resolve(Arrays.asList("location", "category", "score", "number of detections"));
        OutputNames b = OutputNames.resolve(Arrays.asList("number of detections", "score", "location", "category"));
        assertTrue(a.postProcessed && b.postProcessed);
        assertEquals(0, a.indexOf(OutputNames.LOCATION));
        assertEquals(2, b.indexOf(OutputNames.LOCATION));
        assertEquals(0, b.indexOf(OutputNames.COUNT));
        assertEquals(3, b.indexOf(OutputNames.CATEGORY));
    }

    @Test
    public void rawOutputsAreRecognised() {
        OutputNames raw = OutputNames.resolve(Arrays.asList("classes", "boxes"));
        assertFalse(raw.postProcessed);
        assertEquals(1, raw.indexOf(OutputNames.RAW_BOXES));
    }

    @Test
    public void aMissingOutputIsNamedInTheError() {
        try {
            OutputNames.resolve(Arrays.asList("location", "score", "StatefulPartitionedCall:3"));
            fail("resolved a model without category / number of detections");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("category"));
            assertTrue(e.getMessage(), e.getMessage().contains("number of detections"));
        }
    }
}
