"""Real data shipped inside the package or bundled with a dependency (no downloads), each loader and each
preparation next to its data and licence: the Twemoji 32x32 set (`twemoji.py` loads `twemoji32/`,
`twemoji_build.py` rebuilds it from npm), the Brown corpus (`brown.py`, `brown/`, `brown_build.py`),
sklearn's tabular sets (`tabular.py`), the shipped colorization models (`models/`), example photos
(`photo_examples/`) and hand-drawn regions of test-split photos (`photo_masks/`, `colorize/masks.py`)
and of val-split photos, for model selection (`photo_masks_val/`). A preparation runs as
``python -m latentvar.data.brown_build`` (or scripts/<name>.py).
"""
