package org.mobilespinenet.demo;

import android.Manifest;
import android.content.pm.PackageManager;
import android.graphics.Bitmap;
import android.graphics.Matrix;
import android.os.Bundle;
import android.util.Log;
import android.widget.TextView;
import android.widget.Toast;
import androidx.activity.result.ActivityResultLauncher;
import androidx.activity.result.contract.ActivityResultContracts;
import androidx.appcompat.app.AppCompatActivity;
import androidx.camera.core.CameraSelector;
import androidx.camera.core.ImageAnalysis;
import androidx.camera.core.ImageProxy;
import androidx.camera.core.Preview;
import androidx.camera.core.resolutionselector.AspectRatioStrategy;
import androidx.camera.core.resolutionselector.ResolutionSelector;
import androidx.camera.lifecycle.ProcessCameraProvider;
import androidx.camera.view.PreviewView;
import androidx.core.content.ContextCompat;
import com.google.common.util.concurrent.ListenableFuture;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.mobilespinenet.core.Detection;
import org.mobilespinenet.core.LatencyTracker;
import org.mobilespinenet.core.Letterbox;
import org.mobilespinenet.core.ViewMapper;

/**
 * Camera preview with the detector running on the latest frame: CameraX Preview + ImageAnalysis
 * (keep only the latest frame, RGBA), letterboxed as the kit preprocesses, boxes mapped back to the
 * preview with the pure-Java core, inference ms and FPS in the status line.
 */
public final class MainActivity extends AppCompatActivity implements SettingsSheet.Listener {
    private static final String TAG = "SpineNetDemo";

    private final ExecutorService analysisThread = Executors.newSingleThreadExecutor();
    private final LatencyTracker latency = new LatencyTracker(30);
    private PreviewView preview;
    private OverlayView overlay;
    private TextView status;
    private List<String> models = Collections.emptyList();
    private volatile DetectorSettings settings;
    private DetectorSettings loadedSettings; // analysis thread only
    private Detector detector;              // analysis thread only

    private final ActivityResultLauncher<String> cameraPermission = registerForActivityResult(
            new ActivityResultContracts.RequestPermission(), granted -> {
                if (granted) {
                    startCamera();
                } else {
                    status.setText(R.string.camera_denied);
                }
            });

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_main);
        preview = findViewById(R.id.preview);
        overlay = findViewById(R.id.overlay);
        status = findViewById(R.id.status);
        findViewById(R.id.settings_button).setOnClickListener(
                v -> new SettingsSheet().show(getSupportFragmentManager(), "settings"));
        try {
            models = Detector.models(getAssets());
        } catch (IOException e) {
            Log.e(TAG, "cannot list assets", e);
        }
        if (models.isEmpty()) {
            status.setText(R.string.no_model);
            return;
        }
        DetectorSettings saved = DetectorSettings.load(this, models.get(0));
        settings = models.contains(saved.model) ? saved : saved.withModel(models.get(0));
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera();
        } else {
            cameraPermission.launch(Manifest.permission.CAMERA);
        }
    }

    private void startCamera() {
        ListenableFuture<ProcessCameraProvider> future = ProcessCameraProvider.getInstance(this);
        future.addListener(() -> {
            try {
                ProcessCameraProvider provider = future.get();
                ResolutionSelector fourByThree = new ResolutionSelector.Builder()
                        .setAspectRatioStrategy(AspectRatioStrategy.RATIO_4_3_FALLBACK_AUTO_STRATEGY).build();
                Preview previewUseCase = new Preview.Builder().setResolutionSelector(fourByThree).build();
                previewUseCase.setSurfaceProvider(preview.getSurfaceProvider());
                ImageAnalysis analysis = new ImageAnalysis.Builder()
                        .setResolutionSelector(fourByThree)
                        .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                        .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                        .build();
                analysis.setAnalyzer(analysisThread, this::analyze);
                provider.unbindAll();
                provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, previewUseCase, analysis);
            } catch (Exception e) {
                Log.e(TAG, "camera start failed", e);
                status.setText(e.toString());
            }
        }, ContextCompat.getMainExecutor(this));
    }

    /** Runs on the analysis thread for the latest frame only. */
    private void analyze(ImageProxy image) {
        try {
            DetectorSettings wanted = settings;
            if (wanted.needsNewInterpreter(loadedSettings)) {
                if (detector != null) {
                    detector.close();
                    detector = null;
                }
                detector = new Detector(getAssets(), wanted);
            }
            loadedSettings = wanted;
            int rotation = image.getImageInfo().getRotationDegrees();
            Bitmap frame = image.toBitmap();
            Bitmap upright = rotation == 0 ? frame : rotate(frame, rotation);
            Letterbox letterbox = Letterbox.forUpright(upright.getWidth(), upright.getHeight(), detector.inputSize);
            Bitmap content = Bitmap.createScaledBitmap(upright, letterbox.contentWidth, letterbox.contentHeight, true);
            int[] pixels = new int[letterbox.contentWidth * letterbox.contentHeight];
            content.getPixels(pixels, 0, letterbox.contentWidth, 0, 0, letterbox.contentWidth, letterbox.contentHeight);

            long start = System.nanoTime();
            List<Detection> detections = detector.detect(letterbox, pixels, wanted.scoreThreshold);
            long end = System.nanoTime();
            latency.add((end - start) / 1e6, end);

            ViewMapper toView = new ViewMapper(letterbox.frameWidth, letterbox.frameHeight, overlay.getWidth(),
                    overlay.getHeight(), ViewMapper.Mode.FILL); // PreviewView's default FILL_CENTER
            List<Detection> onScreen = new ArrayList<>(detections.size());
            for (Detection d : detections) {
                onScreen.add(d.withBox(toView.toView(letterbox.toFrame(d.box))));
            }
            overlay.show(onScreen);
            String line = detector.description + "\n" + latency.summary() + " · " + detections.size() + " objects";
            runOnUiThread(() -> status.setText(line));
        } catch (Exception e) {
            Log.e(TAG, "detection failed", e);
            String message = e.getMessage();
            runOnUiThread(() -> status.setText(message));
        } finally {
            image.close();
        }
    }

    private static Bitmap rotate(Bitmap bitmap, int degrees) {
        Matrix matrix = new Matrix();
        matrix.postRotate(degrees);
        return Bitmap.createBitmap(bitmap, 0, 0, bitmap.getWidth(), bitmap.getHeight(), matrix, true);
    }

    @Override
    public DetectorSettings current() {
        return settings;
    }

    @Override
    public List<String> models() {
        return models;
    }

    @Override
    public void apply(DetectorSettings changed) {
        settings = changed;
        changed.save(this);
    }

    @Override
    protected void onDestroy() {
        super.onDestroy();
        analysisThread.execute(() -> {
            if (detector != null) {
                detector.close();
                detector = null;
            }
        });
        analysisThread.shutdown();
    }
}
