package org.mobilespinenet.demo;

import android.content.res.AssetFileDescriptor;
import android.content.res.AssetManager;
import java.io.Closeable;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.mobilespinenet.core.Anchors;
import org.mobilespinenet.core.Detection;
import org.mobilespinenet.core.DetectionDecoder;
import org.mobilespinenet.core.Labels;
import org.mobilespinenet.core.Letterbox;
import org.mobilespinenet.core.NmsConfig;
import org.mobilespinenet.core.OutputNames;
import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.gpu.CompatibilityList;
import org.tensorflow.lite.gpu.GpuDelegate;

/**
 * One exported model in the LiteRT interpreter: input from a letterboxed frame, outputs matched
 * by tensor name ({@link OutputNames}), decoded by the pure-Java core.
 */
public final class Detector implements Closeable {
    private final Interpreter interpreter;
    private final GpuDelegate gpu;
    private final OutputNames outputs;
    private final Labels labels;
    private final float[][] anchors; // raw-output files only
    private final NmsConfig nms; // raw-output files: NAME.nms.txt, else the kit's defaults
    public final int inputSize;
    private final boolean uint8Input;
    private final ByteBuffer input;
    private final float[] floatPixels;
    private final byte[] bytePixels;
    public final String description;

    public Detector(AssetManager assets, DetectorSettings settings) throws IOException {
        Interpreter.Options options = new Interpreter.Options().setNumThreads(settings.threads);
        GpuDelegate delegate = null;
        String backend;
        if (settings.delegate == DetectorSettings.Delegate.GPU && new CompatibilityList().isDelegateSupportedOnThisDevice()) {
            delegate = new GpuDelegate();
            options.addDelegate(delegate);
            backend = "GPU";
        } else {
            boolean xnnpack = settings.delegate != DetectorSettings.Delegate.CPU;
            options.setUseXNNPACK(xnnpack);
            backend = (xnnpack ? "XNNPACK" : "CPU") + " x" + settings.threads
                    + (settings.delegate == DetectorSettings.Delegate.GPU ? " (no GPU support)" : "");
        }
        gpu = delegate;
        interpreter = new Interpreter(map(assets, settings.model), options);
        int[] shape = interpreter.getInputTensor(0).shape(); // [1, S, S, 3]
        inputSize = shape[1];
        uint8Input = interpreter.getInputTensor(0).dataType() == DataType.UINT8;
        input = ByteBuffer.allocateDirect(inputSize * inputSize * 3 * (uint8Input ? 1 : 4)).order(ByteOrder.nativeOrder());
        floatPixels = uint8Input ? null : new float[inputSize * inputSize * 3];
        bytePixels = uint8Input ? new byte[inputSize * inputSize * 3] : null;
        List<String> names = new ArrayList<>();
        for (int i = 0; i < interpreter.getOutputTensorCount(); i++) {
            names.add(interpreter.getOutputTensor(i).name());
        }
        outputs = OutputNames.resolve(names);
        String stem = settings.model.replaceAll("\\.tflite$", "");
        labels = readLabels(assets, stem + ".labels.txt");
        anchors = outputs.postProcessed ? null : readAnchors(assets, stem + ".anchors.txt");
        nms = outputs.postProcessed ? null : readNms(assets, stem + ".nms.txt");
        description = settings.model + " · " + inputSize + " px · " + backend;
    }

    private static MappedByteBuffer map(AssetManager assets, String name) throws IOException {
        try (AssetFileDescriptor fd = assets.openFd(name);
             FileInputStream stream = new FileInputStream(fd.getFileDescriptor())) {
            return stream.getChannel().map(FileChannel.MapMode.READ_ONLY, fd.getStartOffset(), fd.getDeclaredLength());
        }
    }

    private static Labels readLabels(AssetManager assets, String name) throws IOException {
        try (InputStream stream = assets.open(name)) {
            return Labels.read(stream);
        } catch (IOException missing) {
            return new Labels(new ArrayList<>()); // "class N" until labels are copied
        }
    }

    private static float[][] readAnchors(AssetManager assets, String name) throws IOException {
        try (InputStream stream = assets.open(name)) {
            return Anchors.read(stream);
        } catch (IOException missing) {
            throw new IOException(name + " is missing: a raw-output model (--nms none) needs its anchors; "
                    + "copy it with `mobile-spinenet android-assets`", missing);
        }
    }

    private static NmsConfig readNms(AssetManager assets, String name) throws IOException {
        InputStream stream;
        try {
            stream = assets.open(name);
        } catch (IOException missing) {
            return NmsConfig.defaults(); // copied before android-assets wrote the settings: the kit's defaults
        }
        try (InputStream open = stream) {
            return NmsConfig.read(open);
        } catch (IOException bad) {
            throw new IOException(name + ": " + bad.getMessage(), bad);
        }
    }

    /** Detections of one upright frame whose letterboxed pixels are {@code argb}, boxes normalised to the input. */
    public List<Detection> detect(Letterbox letterbox, int[] argb, float scoreThreshold) {
        input.rewind();
        if (uint8Input) {
            letterbox.fillUint8Input(argb, bytePixels);
            input.put(bytePixels);
        } else {
            letterbox.fillFloatInput(argb, floatPixels);
            input.asFloatBuffer().put(floatPixels);
        }
        input.rewind();
        Map<Integer, Object> out = new HashMap<>();
        if (outputs.postProcessed) {
            int max = interpreter.getOutputTensor(outputs.indexOf(OutputNames.SCORE)).shape()[1];
            float[][][] location = new float[1][max][4];
            float[][] category = new float[1][max];
            float[][] score = new float[1][max];
            float[] count = new float[1];
            out.put(outputs.indexOf(OutputNames.LOCATION), location);
            out.put(outputs.indexOf(OutputNames.CATEGORY), category);
            out.put(outputs.indexOf(OutputNames.SCORE), score);
            out.put(outputs.indexOf(OutputNames.COUNT), count);
            interpreter.runForMultipleInputsOutputs(new Object[] {input}, out);
            return DetectionDecoder.fromPostProcessed(location[0], category[0], score[0], count[0], scoreThreshold, labels);
        }
        int[] classShape = interpreter.getOutputTensor(outputs.indexOf(OutputNames.RAW_CLASSES)).shape();
        float[][][] classes = new float[1][classShape[1]][classShape[2]];
        float[][][] boxes = new float[1][classShape[1]][4];
        out.put(outputs.indexOf(OutputNames.RAW_CLASSES), classes);
        out.put(outputs.indexOf(OutputNames.RAW_BOXES), boxes);
        interpreter.runForMultipleInputsOutputs(new Object[] {input}, out);
        List<Detection> all = DetectionDecoder.fromRawOutputs(classes[0], boxes[0], anchors, inputSize, nms, labels);
        List<Detection> kept = new ArrayList<>();
        for (Detection d : all) {
            if (d.score >= scoreThreshold) {
                kept.add(d);
            }
        }
        return kept;
    }

    /** The .tflite files in assets/, sorted. */
    public static List<String> models(AssetManager assets) throws IOException {
        List<String> found = new ArrayList<>();
        String[] names = assets.list("");
        if (names != null) {
            for (String name : names) {
                if (name.endsWith(".tflite")) {
                    found.add(name);
                }
            }
        }
        String[] sorted = found.toArray(new String[0]);
        Arrays.sort(sorted);
        return Arrays.asList(sorted);
    }

    @Override
    public void close() {
        interpreter.close();
        if (gpu != null) {
            gpu.close();
        }
    }
}
