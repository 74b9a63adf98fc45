"""Paper-size models against the published counts. Slow (minutes): run with `-m slow`."""
import pytest

from mobile_spinenet.paper import PUBLISHED, TABLE_2, TABLE_5, TOLERANCE
from mobile_spinenet.summary import measure

# Our counts land within 0.5% of the public implementation's, but for one known gap:
# mobile SpineNet-49 has 2.9% more params than its published 2.32 M (see docs/model_zoo.md).
PUBLISHED_TOLERANCE = 0.02
KNOWN_PARAM_GAPS = {("spinenet49_mobile", "detection"): 0.03}
# SpineNet-49S as the paper describes it (x0.75, 128-d) counts below Table 2: see docs/model_zoo.md.
TABLE_2_MATCHED = [row for row in TABLE_2 if row.model_id != "spinenet49s"]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("row", PUBLISHED, ids=lambda r: f"{r.model_id}-{r.task}")
def test_published_counts(row):
    counts = measure(row.model_id, row.task, row.image_size, row.num_classes)
    params_tolerance = KNOWN_PARAM_GAPS.get((row.model_id, row.task), PUBLISHED_TOLERANCE)
    assert abs(counts.params / 1e6 / row.params_m - 1) <= params_tolerance
    assert abs(counts.multiply_adds / 1e9 / row.multiply_adds_b - 1) <= PUBLISHED_TOLERANCE


@pytest.mark.parametrize("row", TABLE_2_MATCHED, ids=lambda r: f"{r.model_id}-{r.image_size}")
def test_table2_counts(row):
    counts = measure(row.model_id, row.task, row.image_size, row.num_classes)
    assert abs(counts.params / 1e6 / row.params_m - 1) <= TOLERANCE
    assert abs(counts.multiply_adds / 1e9 / row.multiply_adds_b - 1) <= TOLERANCE


# Mask R-CNN: SpineNet-49S's multiply-adds are 19% under Table 5, the gap Table 2 shows for its
# RetinaNet (docs/mask_rcnn.md); its params and the other rows are within 10%.
@pytest.mark.parametrize("row", TABLE_5, ids=lambda r: f"{r.model_id}-{r.image_size}")
def test_table5_mask_rcnn_counts(row):
    counts = measure(row.model_id, row.task, row.image_size, row.num_classes)
    assert abs(counts.params / 1e6 / row.params_m - 1) <= TOLERANCE
    if row.model_id != "spinenet49s":
        assert abs(counts.multiply_adds / 1e9 / row.multiply_adds_b - 1) <= TOLERANCE
    else:
        assert 0.75 < counts.multiply_adds / 1e9 / row.multiply_adds_b < 1.0
