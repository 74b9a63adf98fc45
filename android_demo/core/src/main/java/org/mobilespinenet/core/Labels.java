package org.mobilespinenet.core;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** Class names, one per line in class-index order (the kit's {@code MODEL.labels.txt}). */
public final class Labels {
    private final List<String> names;

    public Labels(List<String> names) {
        this.names = Collections.unmodifiableList(new ArrayList<>(names));
    }

    public static Labels read(InputStream stream) throws IOException {
        List<String> names = new ArrayList<>();
        try (BufferedReader reader = new BufferedReader(new InputStreamReader(stream, StandardCharsets.UTF_8))) {
            String line;
            while ((line = reader.readLine()) != null) {
                if (!line.trim().isEmpty()) {
                    names.add(line.trim());
                }
            }
        }
        return new Labels(names);
    }

    public int size() {
        return names.size();
    }

    /** The name of class {@code index}, or "class N" when the file has no such line. */
    public String get(int index) {
        return index >= 0 && index < names.size() ? names.get(index) : "class " + index;
    }
}
