package org.mobilespinenet.core;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Anchors of a raw-output file ({@code --nms none}), as written by {@code mobile-spinenet
 * android-assets}: one anchor per line, "ymin xmin ymax xmax" in input pixels, in the order of
 * the model's outputs.
 */
public final class Anchors {
    private Anchors() {
    }

    public static float[][] read(InputStream stream) throws IOException {
        List<float[]> rows = new ArrayList<>();
        try (BufferedReader reader = new BufferedReader(new InputStreamReader(stream, StandardCharsets.UTF_8))) {
            String line;
            int number = 0;
            while ((line = reader.readLine()) != null) {
                number++;
                if (line.trim().isEmpty()) {
                    continue;
                }
                String[] parts = line.trim().split("\\s+");
                if (parts.length != 4) {
                    throw new IOException("anchors line " + number + ": expected 4 numbers, got '" + line + "'");
                }
                float[] row = new float[4];
                for (int i = 0; i < 4; i++) {
                    row[i] = Float.parseFloat(parts[i]);
                }
                rows.add(row);
            }
        }
        return rows.toArray(new float[0][]);
    }
}
