package org.mobilespinenet.core;

/** An axis-aligned box as (left, top, right, bottom); units depend on where it is used. */
public final class Box {
    public final float left;
    public final float top;
    public final float right;
    public final float bottom;

    public Box(float left, float top, float right, float bottom) {
        this.left = left;
        this.top = top;
        this.right = right;
        this.bottom = bottom;
    }

    /** From the kit's (ymin, xmin, ymax, xmax) order. */
    public static Box fromYxyx(float ymin, float xmin, float ymax, float xmax) {
        return new Box(xmin, ymin, xmax, ymax);
    }

    public float width() {
        return right - left;
    }

    public float height() {
        return bottom - top;
    }

    public float area() {
        return Math.max(0f, width()) * Math.max(0f, height());
    }

    /** Intersection over union; 0 when either box is empty. */
    public float iou(Box other) {
        float w = Math.min(right, other.right) - Math.max(left, other.left);
        float h = Math.min(bottom, other.bottom) - Math.max(top, other.top);
        if (w <= 0f || h <= 0f) {
            return 0f;
        }
        float inter = w * h;
        float union = area() + other.area() - inter;
        return union > 0f ? inter / union : 0f;
    }

    public Box scaled(float sx, float sy) {
        return new Box(left * sx, top * sy, right * sx, bottom * sy);
    }

    public Box clipped(float maxX, float maxY) {
        return new Box(clamp(left, maxX), clamp(top, maxY), clamp(right, maxX), clamp(bottom, maxY));
    }

    private static float clamp(float v, float max) {
        return Math.max(0f, Math.min(max, v));
    }

    @Override
    public String toString() {
        return String.format(java.util.Locale.ROOT, "[%.1f, %.1f, %.1f, %.1f]", left, top, right, bottom);
    }
}
