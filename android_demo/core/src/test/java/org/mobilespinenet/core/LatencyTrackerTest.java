package org.mobilespinenet.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import org.junit.Test;

public class LatencyTrackerTest {
    @Test
    public void medianAndFpsOverTheWindow() {
        LatencyTracker tracker = new LatencyTracker(3);
        assertTrue(Double.isNaN(tracker.medianMs()));
        assertEquals("inference – ms · – FPS", tracker.summary());
        tracker.add(100.0, 0L);  // falls out of the window
        tracker.add(10.0, 1_000_000_000L);
        tracker.add(30.0, 1_050_000_000L);
        tracker.add(20.0, 1_100_000_000L);
        assertEquals(3, tracker.count());
        assertEquals(20.0, tracker.medianMs(), 1e-9);
        assertEquals(20.0, tracker.fps(), 1e-6);  // 2 intervals in 0.1 s
        assertEquals("inference 20.0 ms · 20.0 FPS", tracker.summary());
    }

    @Test(expected = IllegalArgumentException.class)
    public void aWindowOfOneFrameIsRefused() {
        new LatencyTracker(1);
    }
}
