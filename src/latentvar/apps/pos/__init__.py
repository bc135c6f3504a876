"""Part-of-speech induction on the Brown corpus: HMMs fitted to raw sentences (EM, or Adam with neural
spelling emissions), a supervised tagger from counts, and an LSTM language model as the perplexity baseline.

Rooms: data.py (split, vocabulary, length-sorted minibatches), train.py (`hmm fit`: models from
checkpoints, EM and gradient iterations), evaluate.py (`hmm eval`, `hmm supervised`: many-to-one,
V-measure, perplexity), lm.py (`lm fit | eval | sample`), report.py (`hmm report`: the HTML report).
The emission families and the word-cluster initialiser are the HMM family's (`latentvar.hmm.emissions`,
`latentvar.hmm.word_clusters`); the corpus and its loader are `latentvar.data.brown`.
"""
