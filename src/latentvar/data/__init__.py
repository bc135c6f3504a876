"""Real data shipped inside the package or bundled with a dependency (no downloads), each loader next to
its data and licence: the Twemoji 32x32 set (`twemoji.py`, `twemoji32/`), the Brown corpus (`brown.py`,
`brown/`), sklearn's tabular sets (`tabular.py`), the shipped colorization models (`models/`) and example
photos (`photo_examples/`). README's data section names the script that rebuilds each shipped folder."""
