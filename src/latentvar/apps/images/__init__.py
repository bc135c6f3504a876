"""Image generators on Twemoji 32×32 (`latentvar generator ...`): one DCGAN decoder trained as a GAN or a
VAE, its samples, honest estimates of log P(y), and the estimators report.

Rooms: data.py (the images as tensors in [-1, 1]), dcgan.py (the DCGAN networks and losses), train.py
(`generator train`: GAN or VAE runs, resumable), samples.py (`generator sample`: grids, interpolations),
evaluate.py (`generator loglik`: ELBO, IWAE, AIS, naive MC), linear_gaussian.py (the estimators where the
exact answer is known), report.py (`generator report`). The model family is `latentvar.generator`.
"""
