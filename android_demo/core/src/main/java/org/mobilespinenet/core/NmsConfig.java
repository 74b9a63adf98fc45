package org.mobilespinenet.core;

/** Post-processing settings; the defaults are the kit's ({@code mobile_spinenet.postprocess.NMSConfig}). */
public final class NmsConfig {
    public final float scoreThreshold;
    public final float iouThreshold;
    public final int maxDetections;
    public final int preNmsTopK;

    public NmsConfig(float scoreThreshold, float iouThreshold, int maxDetections, int preNmsTopK) {
        this.scoreThreshold = scoreThreshold;
        this.iouThreshold = iouThreshold;
        this.maxDetections = maxDetections;
        this.preNmsTopK = preNmsTopK;
    }

    public static NmsConfig defaults() {
        return new NmsConfig(0.05f, 0.5f, 100, 1000);
    }
}
