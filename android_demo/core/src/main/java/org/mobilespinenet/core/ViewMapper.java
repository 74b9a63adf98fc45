package org.mobilespinenet.core;

/**
 * Maps upright-frame pixels to the pixels of the view that shows the frame, as CameraX's
 * {@code PreviewView} scales it: {@link Mode#FILL} (FILL_CENTER, the frame covers the view and is
 * cropped) or {@link Mode#FIT} (FIT_CENTER, the whole frame shows, with bars).
 */
public final class ViewMapper {
    public enum Mode { FILL, FIT }

    public final float scale;
    public final float offsetX;
    public final float offsetY;

    public ViewMapper(int frameWidth, int frameHeight, int viewWidth, int viewHeight, Mode mode) {
        float sx = viewWidth / (float) frameWidth;
        float sy = viewHeight / (float) frameHeight;
        scale = mode == Mode.FILL ? Math.max(sx, sy) : Math.min(sx, sy);
        offsetX = (viewWidth - frameWidth * scale) / 2f;
        offsetY = (viewHeight - frameHeight * scale) / 2f;
    }

    public Box toView(Box frameBox) {
        return new Box(frameBox.left * scale + offsetX, frameBox.top * scale + offsetY,
                frameBox.right * scale + offsetX, frameBox.bottom * scale + offsetY);
    }
}
