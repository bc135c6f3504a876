from latentvar.apps.speech.train import main

main()
