"""An RBM on real data: scikit-learn's 8×8 handwritten digits, binarised, trained by persistent contrastive
divergence, with its held-out log-likelihood estimated honestly -- AIS with standard errors, beside the
exact value where Z can still be enumerated (16 hidden units) -- and a report of Gibbs samples and filters.
Run it with `python -m latentvar.apps.rbm --out DIR`.

Rooms: data.py (load, binarise, the fixed train / val / test split), train.py (PCD through the run
harness, resumable; the epoch is chosen on val), evaluate.py (exact and AIS log-likelihoods),
report.py (the HTML report), experiment.py (the entry point).
"""
