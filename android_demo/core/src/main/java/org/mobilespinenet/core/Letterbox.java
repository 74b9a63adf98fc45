package org.mobilespinenet.core;

/**
 * The kit's preprocessing geometry: the upright frame's long side is resized to the model's
 * square input and the rest is padded at the bottom / right (zeros after normalising to
 * [-1, 1]), so a normalised model box maps back to frame pixels by one scale, no offset.
 */
public final class Letterbox {
    public final int inputSize;
    public final int frameWidth;
    public final int frameHeight;
    /** Model pixels per frame pixel. */
    public final float scale;
    public final int contentWidth;
    public final int contentHeight;

    private Letterbox(int inputSize, int frameWidth, int frameHeight) {
        if (inputSize <= 0 || frameWidth <= 0 || frameHeight <= 0) {
            throw new IllegalArgumentException("sizes must be positive: input " + inputSize + ", frame "
                    + frameWidth + "x" + frameHeight);
        }
        this.inputSize = inputSize;
        this.frameWidth = frameWidth;
        this.frameHeight = frameHeight;
        this.scale = inputSize / (float) Math.max(frameWidth, frameHeight);
        this.contentWidth = Math.max(1, Math.round(frameWidth * scale));
        this.contentHeight = Math.max(1, Math.round(frameHeight * scale));
    }

    /** For an upright frame of the given size. */
    public static Letterbox forUpright(int frameWidth, int frameHeight, int inputSize) {
        return new Letterbox(inputSize, frameWidth, frameHeight);
    }

    /**
     * For a camera buffer of {@code width x height} that must be rotated by {@code rotationDegrees}
     * (CameraX's {@code ImageInfo.getRotationDegrees()}) to be upright: 90 and 270 swap the sides.
     */
    public static Letterbox forCameraFrame(int width, int height, int rotationDegrees, int inputSize) {
        int r = ((rotationDegrees % 360) + 360) % 360;
        if (r % 90 != 0) {
            throw new IllegalArgumentException("rotation must be a multiple of 90 degrees, got " + rotationDegrees);
        }
        boolean swap = r == 90 || r == 270;
        return new Letterbox(inputSize, swap ? height : width, swap ? width : height);
    }

    public boolean isPortrait() {
        return frameHeight > frameWidth;
    }

    /** A box normalised to the model input ([0, 1]) in upright-frame pixels, clipped to the frame. */
    public Box toFrame(Box normalised) {
        float k = inputSize / scale;
        return normalised.scaled(k, k).clipped(frameWidth, frameHeight);
    }

    /**
     * Writes the model input: {@code argb} is the upright frame already resized to
     * {@code contentWidth x contentHeight}; out is [inputSize * inputSize * 3] RGB in [-1, 1],
     * zero outside the content.
     */
    public void fillFloatInput(int[] argb, float[] out) {
        checkSizes(argb.length, out.length);
        java.util.Arrays.fill(out, 0f);
        for (int y = 0; y < contentHeight; y++) {
            for (int x = 0; x < contentWidth; x++) {
                int p = argb[y * contentWidth + x];
                int o = (y * inputSize + x) * 3;
                out[o] = ((p >> 16) & 0xff) / 127.5f - 1f;
                out[o + 1] = ((p >> 8) & 0xff) / 127.5f - 1f;
                out[o + 2] = (p & 0xff) / 127.5f - 1f;
            }
        }
    }

    /** As {@link #fillFloatInput} for uint8-input files (raw pixels; padding 128, i.e. ~0 normalised). */
    public void fillUint8Input(int[] argb, byte[] out) {
        checkSizes(argb.length, out.length);
        java.util.Arrays.fill(out, (byte) 128);
        for (int y = 0; y < contentHeight; y++) {
            for (int x = 0; x < contentWidth; x++) {
                int p = argb[y * contentWidth + x];
                int o = (y * inputSize + x) * 3;
                out[o] = (byte) ((p >> 16) & 0xff);
                out[o + 1] = (byte) ((p >> 8) & 0xff);
                out[o + 2] = (byte) (p & 0xff);
            }
        }
    }

    private void checkSizes(int pixels, int outLength) {
        if (pixels != contentWidth * contentHeight) {
            throw new IllegalArgumentException("expected " + contentWidth + "x" + contentHeight + " pixels, got "
                    + pixels);
        }
        if (outLength != inputSize * inputSize * 3) {
            throw new IllegalArgumentException("input buffer must hold " + inputSize * inputSize * 3 + " values");
        }
    }
}
