package org.mobilespinenet.demo;

import android.content.Context;
import android.graphics.Canvas;
import android.graphics.Color;
import android.graphics.Paint;
import android.util.AttributeSet;
import android.view.View;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.mobilespinenet.core.Box;
import org.mobilespinenet.core.Detection;

/** Draws detections (boxes already in view pixels) with their label and score. */
public final class OverlayView extends View {
    private static final int[] PALETTE = {0xFFE6194B, 0xFF3CB44B, 0xFFFFE119, 0xFF4363D8, 0xFFF58231,
            0xFF911EB4, 0xFF46F0F0, 0xFFF032E6, 0xFFBCF60C, 0xFFFABEBE};
    private final Paint boxPaint = new Paint();
    private final Paint textPaint = new Paint();
    private final Paint textBackground = new Paint();
    private List<Detection> detections = new ArrayList<>();

    public OverlayView(Context context, AttributeSet attrs) {
        super(context, attrs);
        boxPaint.setStyle(Paint.Style.STROKE);
        boxPaint.setStrokeWidth(6f);
        textPaint.setColor(Color.WHITE);
        textPaint.setTextSize(40f);
        textBackground.setStyle(Paint.Style.FILL);
    }

    /** Replace the drawn detections (call from any thread). */
    public void show(List<Detection> viewDetections) {
        post(() -> {
            detections = viewDetections;
            invalidate();
        });
    }

    @Override
    protected void onDraw(Canvas canvas) {
        super.onDraw(canvas);
        for (Detection d : detections) {
            int colour = PALETTE[Math.floorMod(d.classIndex, PALETTE.length)];
            Box b = d.box;
            boxPaint.setColor(colour);
            canvas.drawRect(b.left, b.top, b.right, b.bottom, boxPaint);
            String text = String.format(Locale.ROOT, "%s %.2f", d.label, d.score);
            float width = textPaint.measureText(text);
            float top = Math.max(0f, b.top - 48f);
            textBackground.setColor(colour);
            canvas.drawRect(b.left, top, b.left + width + 16f, top + 48f, textBackground);
            canvas.drawText(text, b.left + 8f, top + 38f, textPaint);
        }
    }
}
