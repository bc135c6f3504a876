from latentvar.apps.rbm.experiment import main

main()
