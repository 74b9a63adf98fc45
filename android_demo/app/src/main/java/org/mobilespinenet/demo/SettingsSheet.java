package org.mobilespinenet.demo;

import android.os.Bundle;
import android.view.LayoutInflater;
import android.view.View;
import android.view.ViewGroup;
import android.widget.AdapterView;
import android.widget.ArrayAdapter;
import android.widget.RadioGroup;
import android.widget.Spinner;
import android.widget.TextView;
import androidx.annotation.NonNull;
import androidx.annotation.Nullable;
import com.google.android.material.bottomsheet.BottomSheetDialogFragment;
import com.google.android.material.slider.Slider;
import java.util.List;

/** Bottom sheet with the model, CPU threads, delegate and score threshold; changes apply at once. */
public final class SettingsSheet extends BottomSheetDialogFragment {
    /** Receives every change. */
    public interface Listener {
        DetectorSettings current();

        List<String> models();

        void apply(DetectorSettings settings);
    }

    private Listener listener() {
        return (Listener) requireActivity();
    }

    @Nullable
    @Override
    public View onCreateView(@NonNull LayoutInflater inflater, @Nullable ViewGroup container,
                             @Nullable Bundle savedInstanceState) {
        View view = inflater.inflate(R.layout.settings_sheet, container, false);
        DetectorSettings settings = listener().current();

        Spinner modelSpinner = view.findViewById(R.id.model_spinner);
        List<String> models = listener().models();
        modelSpinner.setAdapter(new ArrayAdapter<>(requireContext(), android.R.layout.simple_spinner_dropdown_item, models));
        modelSpinner.setSelection(Math.max(0, models.indexOf(settings.model)));
        modelSpinner.setOnItemSelectedListener(new AdapterView.OnItemSelectedListener() {
            @Override
            public void onItemSelected(AdapterView<?> parent, View v, int position, long id) {
                String chosen = models.get(position);
                if (!chosen.equals(listener().current().model)) {
                    listener().apply(listener().current().withModel(chosen));
                }
            }

            @Override
            public void onNothingSelected(AdapterView<?> parent) {
            }
        });

        TextView threadsLabel = view.findViewById(R.id.threads_label);
        Slider threads = view.findViewById(R.id.threads_slider);
        threads.setValue(Math.max(1, Math.min(8, settings.threads)));
        threadsLabel.setText(getString(R.string.threads, settings.threads));
        threads.addOnChangeListener((slider, value, fromUser) -> {
            threadsLabel.setText(getString(R.string.threads, (int) value));
            if (fromUser) {
                listener().apply(listener().current().withThreads((int) value));
            }
        });

        RadioGroup delegates = view.findViewById(R.id.delegate_group);
        delegates.check(settings.delegate == DetectorSettings.Delegate.GPU ? R.id.delegate_gpu
                : settings.delegate == DetectorSettings.Delegate.CPU ? R.id.delegate_cpu : R.id.delegate_xnnpack);
        delegates.setOnCheckedChangeListener((group, checked) -> listener().apply(listener().current().withDelegate(
                checked == R.id.delegate_gpu ? DetectorSettings.Delegate.GPU
                        : checked == R.id.delegate_cpu ? DetectorSettings.Delegate.CPU : DetectorSettings.Delegate.XNNPACK)));

        TextView scoreLabel = view.findViewById(R.id.score_label);
        Slider score = view.findViewById(R.id.score_slider);
        score.setValue(Math.round(settings.scoreThreshold * 20f) / 20f);
        scoreLabel.setText(getString(R.string.score_threshold, settings.scoreThreshold));
        score.addOnChangeListener((slider, value, fromUser) -> {
            scoreLabel.setText(getString(R.string.score_threshold, value));
            if (fromUser) {
                listener().apply(listener().current().withScoreThreshold(value));
            }
        });
        return view;
    }
}
