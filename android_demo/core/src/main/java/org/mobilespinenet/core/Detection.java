package org.mobilespinenet.core;

/** One detection: class index, its label, score, and a box. */
public final class Detection {
    public final int classIndex;
    public final String label;
    public final float score;
    public final Box box;

    public Detection(int classIndex, String label, float score, Box box) {
        this.classIndex = classIndex;
        this.label = label;
        this.score = score;
        this.box = box;
    }

    /** The same detection with its box replaced (e.g. mapped to another coordinate frame). */
    public Detection withBox(Box newBox) {
        return new Detection(classIndex, label, score, newBox);
    }

    @Override
    public String toString() {
        return String.format(java.util.Locale.ROOT, "%s %.2f %s", label, score, box);
    }
}
