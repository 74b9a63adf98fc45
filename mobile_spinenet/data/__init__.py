"""Datasets: COCO / Pascal VOC readers, the tf.data input pipeline, anchor labelling and the
bundled demo data (Fashion-MNIST glyphs pasted on canvases, written as COCO)."""
