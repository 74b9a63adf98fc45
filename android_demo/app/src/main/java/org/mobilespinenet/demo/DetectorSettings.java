package org.mobilespinenet.demo;

import android.content.Context;
import android.content.SharedPreferences;

/** What the settings sheet changes: model file, threads, delegate, score threshold (kept across launches). */
public final class DetectorSettings {
    public enum Delegate { XNNPACK, CPU, GPU }

    public final String model;
    public final int threads;
    public final Delegate delegate;
    public final float scoreThreshold;

    public DetectorSettings(String model, int threads, Delegate delegate, float scoreThreshold) {
        this.model = model;
        this.threads = threads;
        this.delegate = delegate;
        this.scoreThreshold = scoreThreshold;
    }

    /** Whether switching from {@code other} needs a new interpreter (everything but the threshold). */
    public boolean needsNewInterpreter(DetectorSettings other) {
        return other == null || !model.equals(other.model) || threads != other.threads || delegate != other.delegate;
    }

    public DetectorSettings withModel(String value) {
        return new DetectorSettings(value, threads, delegate, scoreThreshold);
    }

    public DetectorSettings withThreads(int value) {
        return new DetectorSettings(model, value, delegate, scoreThreshold);
    }

    public DetectorSettings withDelegate(Delegate value) {
        return new DetectorSettings(model, threads, value, scoreThreshold);
    }

    public DetectorSettings withScoreThreshold(float value) {
        return new DetectorSettings(model, threads, delegate, value);
    }

    private static SharedPreferences prefs(Context context) {
        return context.getSharedPreferences("detector", Context.MODE_PRIVATE);
    }

    public static DetectorSettings load(Context context, String defaultModel) {
        SharedPreferences p = prefs(context);
        return new DetectorSettings(p.getString("model", defaultModel), p.getInt("threads", 4),
                Delegate.valueOf(p.getString("delegate", Delegate.XNNPACK.name())), p.getFloat("score", 0.4f));
    }

    public void save(Context context) {
        prefs(context).edit().putString("model", model).putInt("threads", threads).putString("delegate", delegate.name())
                .putFloat("score", scoreThreshold).apply();
    }
}
