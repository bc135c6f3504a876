from latentvar.cli import main

main()
