"""Real speech with latentvar's CTC (the application `latentvar.apps.speech`; its docstring has the details).

scripts/ctc_speech_prepare.sh                 # apt-get download of the two Debian packages (CC-BY-SA 3.0)
PYTHONPATH=src python bench/ctc_speech.py [--epochs 30] [--out runs/ctc_speech] [--resume]
"""

from latentvar.apps.speech.train import main

if __name__ == "__main__":
    main()
