"""Handwritten digit strings read by a small CNN + BiGRU trained with latentvar's CTC (`latentvar ctc ...`).

Rooms: data.py (scans split by scan, lines drawn from them), model.py (`Config`, `LineReader`, the run's
checkpoint), train.py (`ctc train`, resumable), evaluate.py (`ctc eval`: CER, sequence accuracy;
`edit_distance`), report.py (`ctc align`: alignment posteriors and forced alignments drawn over lines).
"""
