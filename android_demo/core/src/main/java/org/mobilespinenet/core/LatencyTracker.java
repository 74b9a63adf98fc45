package org.mobilespinenet.core;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;

/** Rolling inference latency (median of the last frames) and frame rate, for the overlay's status line. */
public final class LatencyTracker {
    private final int window;
    private final ArrayDeque<Double> latenciesMs = new ArrayDeque<>();
    private final ArrayDeque<Long> frameTimesNanos = new ArrayDeque<>();

    public LatencyTracker(int window) {
        if (window < 2) {
            throw new IllegalArgumentException("window must hold at least 2 frames, got " + window);
        }
        this.window = window;
    }

    /** Records one frame: its inference time and when it finished ({@code System.nanoTime()}). */
    public synchronized void add(double inferenceMs, long finishedNanos) {
        latenciesMs.addLast(inferenceMs);
        frameTimesNanos.addLast(finishedNanos);
        if (latenciesMs.size() > window) {
            latenciesMs.removeFirst();
            frameTimesNanos.removeFirst();
        }
    }

    public synchronized int count() {
        return latenciesMs.size();
    }

    /** Median inference time over the window; NaN before the first frame. */
    public synchronized double medianMs() {
        if (latenciesMs.isEmpty()) {
            return Double.NaN;
        }
        List<Double> sorted = new ArrayList<>(latenciesMs);
        Collections.sort(sorted);
        int n = sorted.size();
        return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2.0;
    }

    /** Frames per second over the window; NaN with fewer than two frames. */
    public synchronized double fps() {
        if (frameTimesNanos.size() < 2) {
            return Double.NaN;
        }
        long span = frameTimesNanos.peekLast() - frameTimesNanos.peekFirst();
        return span > 0 ? (frameTimesNanos.size() - 1) * 1e9 / span : Double.NaN;
    }

    /** "inference 12.3 ms · 45.6 FPS" (dashes until there is data). */
    public String summary() {
        double ms = medianMs();
        double fps = fps();
        return String.format(Locale.ROOT, "inference %s ms · %s FPS", Double.isNaN(ms) ? "–" : String.format(Locale.ROOT, "%.1f", ms),
                Double.isNaN(fps) ? "–" : String.format(Locale.ROOT, "%.1f", fps));
    }
}
