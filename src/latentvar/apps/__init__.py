"""The applications: each folder is one task with its data, training, evaluation and report, built on the
model families and the public API, and driven by one verb group of the `latentvar` command.

- `pos/`: part-of-speech induction and tagging on the Brown corpus (HMMs), with an LSTM language model
  beside it (`latentvar hmm ...`, `latentvar lm ...`).
- `digits/`: handwritten digit strings read with CTC (`latentvar ctc ...`).
- `images/`: DCGAN image generators on Twemoji trained as a GAN or a VAE, their log P(y) estimates and
  the estimators report (`latentvar generator ...`).
- `mixtures/`: a Gaussian mixture fitted by exact EM to a tabular data set (`latentvar mixture fit`).
- `speech/`: real speech read and force-aligned with CTC (`python -m latentvar.apps.speech`; its data is
  fetched by scripts/ctc_speech_prepare.sh).
- `rbm/`: an RBM trained by persistent contrastive divergence on the binarised 8×8 digits, its test
  log-likelihood by AIS beside the exact value where Z can be enumerated (`python -m latentvar.apps.rbm`).

The flagship application, colorization, keeps its public path `latentvar.colorize`.
"""
